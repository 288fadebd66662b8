"""The chat agent: a registry of typed tools, the litellm tool loop and the no-LLM answerer.

Everything the agent knows comes from tool results (plan, job logs, knowledge base); the text of
those results is data and never instructions. The only tool with an effect is `propose_action`,
which makes a proposal a person must confirm (chat/services.py).
"""

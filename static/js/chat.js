/* Resync chat page: renders the event stream as it arrives, reconnects and replays what it missed.
   No libraries: the Markdown renderer escapes all HTML first, then adds a handful of tags. */
(function () {
  "use strict";

  const root = document.getElementById("chat");
  if (!root) return;
  const i18n = document.getElementById("chat-i18n").dataset;
  const log = document.getElementById("chat-log");
  const form = document.getElementById("chat-form");
  const input = document.getElementById("chat-input");
  const stopButton = document.getElementById("chat-stop");
  const statusLine = document.getElementById("chat-status");
  const dialog = document.getElementById("confirm-dialog");
  const agentSelect = document.getElementById("chat-agent");
  const agentPurpose = document.getElementById("chat-agent-purpose");
  const me = root.dataset.user;
  const labels = JSON.parse(document.getElementById("chat-labels").textContent || "{}");
  const actionLabel = (ev) => (labels.actions && labels.actions[ev.action]) || ev.action_label;
  const statusLabel = (ev) => (labels.statuses && labels.statuses[ev.status]) || ev.status_label;

  let conversationId = root.dataset.conversationId || null;
  let lastSeq = 0;
  const seen = new Set();
  const turns = new Map();
  const proposals = new Map();
  let activeTurn = null;
  let socket = null;
  let retry = 0;
  let pendingDialog = null;
  let lastSent = "";

  // --- safe Markdown ------------------------------------------------------------------------
  function escapeHtml(text) {
    return String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  }

  function safeUrl(url) {
    // Citations only ever point inside this site.
    return typeof url === "string" && url.startsWith("/") && !url.startsWith("//");
  }

  function inline(text, citations) {
    // `text` is already escaped: only our own tags are added below.
    return text
      .replace(/`([^`]+)`/g, "<code>$1</code>")
      .replace(/\*\*([^*]+)\*\*/g, "<strong>$1</strong>")
      .replace(/(^|\W)_([^_]+)_(?=\W|$)/g, "$1<em>$2</em>")
      .replace(/\[(\d{1,3})\]/g, (m, n) => {
        const c = citations && citations.get(Number(n));
        if (!c || !safeUrl(c.url)) return m;
        return '<a class="cite-ref" href="' + escapeHtml(c.url) + '" title="' + escapeHtml(c.title) + '">[' + n + "]</a>";
      });
  }

  function renderMarkdown(source, citations) {
    const parts = String(source).split(/```/);
    let html = "";
    parts.forEach((part, index) => {
      if (index % 2 === 1) {
        html += "<pre><code>" + escapeHtml(part.replace(/^\w*\n/, "")) + "</code></pre>";
        return;
      }
      const blocks = escapeHtml(part).split(/\n{2,}/);
      blocks.forEach((block) => {
        // Consecutive "- x" or "1. x" lines become a list; other lines a paragraph.
        let kind = null;
        let items = [];
        const flush = () => {
          if (!items.length) return;
          if (kind === "p") html += "<p>" + items.map((l) => inline(l, citations)).join("<br>") + "</p>";
          else html += "<" + kind + ">" + items.map((l) => "<li>" + inline(l, citations) + "</li>").join("") + "</" + kind + ">";
          items = [];
        };
        block.split("\n").forEach((line) => {
          if (!line.trim()) return;
          let lineKind = "p";
          let text = line;
          if (/^\s*[-*] /.test(line)) {
            lineKind = "ul";
            text = line.replace(/^\s*[-*] /, "");
          } else if (/^\s*\d+[.)] /.test(line)) {
            lineKind = "ol";
            text = line.replace(/^\s*\d+[.)] /, "");
          }
          if (lineKind !== kind) flush();
          kind = lineKind;
          items.push(text);
        });
        flush();
      });
    });
    return html;
  }

  // --- DOM helpers ----------------------------------------------------------------------------
  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => {
      if (k === "text") node.textContent = v;
      else if (k === "class") node.className = v;
      else node.setAttribute(k, v);
    });
    (children || []).forEach((child) => node.appendChild(child));
    return node;
  }

  function scrollDown() {
    log.scrollTop = log.scrollHeight;
  }

  function turnFor(turnId) {
    if (!turnId) return null;
    let turn = turns.get(turnId);
    if (turn) return turn;
    const question = el("div", { class: "msg msg-user" });
    const body = el("div", { class: "msg-body" });
    const tools = el("ul", { class: "msg-tools" });
    const cites = el("ol", { class: "msg-cites", "aria-label": i18n.sources });
    const cards = el("div", { class: "msg-cards" });
    const footer = el("div", { class: "msg-footer" });
    const answer = el("div", { class: "msg msg-assistant", "aria-busy": "true" }, [
      el("div", { class: "msg-who", text: i18n.assistant }), tools, body, cites, cards, footer,
    ]);
    const wrapper = el("article", { class: "turn", "data-turn-id": turnId }, [question, answer]);
    log.appendChild(wrapper);
    turn = { id: turnId, text: "", question, answer, body, tools, cites, cards, footer, citations: new Map(), done: false };
    turns.set(turnId, turn);
    return turn;
  }

  // An answer the team approved earlier, given as is: a badge beside the assistant's name.
  function markVerified(turn) {
    const who = turn.answer.querySelector(".msg-who");
    if (who.querySelector(".badge-verified")) return;
    who.appendChild(el("span", { class: "badge badge-verified", title: i18n.verifiedTitle, text: "✔ " + i18n.verified }));
  }

  function renderBody(turn) {
    turn.body.innerHTML = renderMarkdown(turn.text, turn.citations);
  }

  function setBusy(turnId) {
    activeTurn = turnId;
    stopButton.hidden = !turnId;
    document.getElementById("chat-send").disabled = Boolean(turnId);
    statusLine.textContent = turnId ? i18n.thinking : "";
  }

  // --- events -----------------------------------------------------------------------------------
  const handlers = {
    ack(ev) {
      if (ev.conversation_id && !conversationId) {
        conversationId = ev.conversation_id;
        history.replaceState(null, "", root.dataset.pageUrl + "?c=" + conversationId);
      }
      if (ev.turn_id && ev.ref === "msg") setBusy(ev.turn_id);
      if (conversationId) document.getElementById("chat-resolve").hidden = false;
    },
    question(ev) {
      const turn = turnFor(ev.turn_id);
      turn.question.replaceChildren(el("div", { class: "msg-who", text: ev.user === me ? i18n.you : ev.user }), el("p", { text: ev.text }));
      if (!ev.replay) setBusy(ev.turn_id);
    },
    token(ev) {
      const turn = turnFor(ev.turn_id);
      // Offsets make replays and duplicates harmless: the text is rebuilt, never appended twice.
      turn.text = turn.text.slice(0, ev.offset) + ev.text;
      renderBody(turn);
    },
    tool_call(ev) {
      const turn = turnFor(ev.turn_id);
      const args = Object.entries(ev.arguments || {}).map(([k, v]) => k + "=" + JSON.stringify(v)).join(", ");
      turn.tools.appendChild(el("li", { class: "tool running", "data-name": ev.name, text: "⚙ " + ev.name + "(" + args + ")" }));
    },
    tool_result(ev) {
      const turn = turnFor(ev.turn_id);
      const items = turn.tools.querySelectorAll('li.running[data-name="' + CSS.escape(ev.name) + '"]');
      const item = items[0];
      if (item) {
        item.classList.remove("running");
        item.classList.add(ev.ok ? "ok" : "failed");
        item.appendChild(el("span", { class: "tool-summary", text: " → " + ev.summary }));
      }
    },
    citation(ev) {
      const turn = turnFor(ev.turn_id);
      if (turn.citations.has(ev.n)) return;
      turn.citations.set(ev.n, ev);
      const link = safeUrl(ev.url) ? el("a", { href: ev.url, text: ev.title }) : el("span", { text: ev.title });
      turn.cites.appendChild(el("li", { value: String(ev.n), class: "cite cite-" + ev.kind + (ev.verified ? " cite-verified" : "") }, [link]));
      if (ev.verified) markVerified(turn);
      renderBody(turn);
    },
    action_proposal(ev) {
      renderProposal(ev);
    },
    action_result(ev) {
      renderProposal(ev);
    },
    approval_update(ev) {
      renderApproval(ev);
    },
    error(ev) {
      const turn = ev.turn_id ? turns.get(ev.turn_id) : null;
      const note = el("p", { class: "error", role: "alert", text: ev.message });
      // A refused message (no turn was started, e.g. a disabled agent) must not leave the page busy.
      if (ev.turn_id && activeTurn === ev.turn_id) setBusy(null);
      if (turn) {
        turn.footer.appendChild(note);
      } else {
        statusLine.textContent = ev.message;
        if (ev.ref === "msg" && !input.value) input.value = lastSent;
      }
    },
    done(ev) {
      const turn = turnFor(ev.turn_id);
      turn.done = true;
      turn.answer.setAttribute("aria-busy", "false");
      turn.footer.replaceChildren();
      if (ev.agent) {
        // The agent that wrote this answer, by its name in the page's language (the slug if it is gone).
        const name = (labels.agents && labels.agents[ev.agent]) || ev.agent;
        turn.footer.appendChild(el("span", {
          class: "msg-agent", "data-agent": ev.agent,
          text: i18n.agent + ": " + name + (ev.agent_pinned ? " (" + i18n.agentPinned + ")" : ""),
        }));
      }
      const meta = el("span", { class: "msg-meta", text: i18n.model + " " + ev.model + " · " + ev.latency_ms + " ms" + (ev.status === "stopped" ? " · " + i18n.stopped : "") });
      turn.footer.appendChild(meta);
      if (ev.verified) markVerified(turn);
      if (ev.message_id) turn.footer.appendChild(feedbackButtons(ev.message_id));
      if (activeTurn === ev.turn_id || !ev.replay) setBusy(null);
    },
    pong() {},
  };

  function handle(ev) {
    if (ev.seq) {
      if (seen.has(ev.seq)) return;
      seen.add(ev.seq);
      if (ev.seq > lastSeq) lastSeq = ev.seq;
    }
    if (ev.conversation_id && conversationId && ev.conversation_id !== conversationId && ev.type !== "approval_update") return;
    const handler = handlers[ev.type];
    if (handler) handler(ev);
    scrollDown();
  }

  // --- feedback ----------------------------------------------------------------------------------
  function feedbackButtons(messageId) {
    const box = el("span", { class: "feedback" });
    const up = el("button", { type: "button", class: "feedback-up", text: i18n.helpful });
    const down = el("button", { type: "button", class: "feedback-down", text: i18n.notHelpful });
    up.addEventListener("click", () => {
      send({ type: "feedback", message_id: messageId, rating: "up" });
      box.replaceChildren(el("span", { text: i18n.thanks }));
    });
    down.addEventListener("click", () => {
      const reason = window.prompt(i18n.whyNot) || "";
      send({ type: "feedback", message_id: messageId, rating: "down", reason: reason.slice(0, 1000) });
      box.replaceChildren(el("span", { text: i18n.thanks }));
    });
    box.append(up, down);
    return box;
  }

  // --- action cards --------------------------------------------------------------------------------
  function impactList(ev) {
    const impact = ev.impact || {};
    const rows = [];
    const add = (label, names) => {
      if (names && names.length) rows.push(el("li", { text: label + ": " + names.join(", ") }));
    };
    add(i18n.willRun, impact.will_run);
    add(i18n.stayBlocked, impact.stay_blocked);
    add(i18n.critical, impact.critical);
    if (ev.needs_second_approver) rows.push(el("li", { class: "warn", text: i18n.second }));
    return el("ul", { class: "impact" }, rows);
  }

  function proposalTitle(ev) {
    // The folder where it tells two jobs apart (the same job stream name in two folders).
    return actionLabel(ev) + ": " + (ev.jobs || []).map((j) => ((j.label || "").includes("/") ? j.label : j.name)).join(", ");
  }

  function renderProposal(ev) {
    const turn = turnFor(ev.turn_id) || null;
    let card = proposals.get(ev.proposal_id);
    if (!card) {
      card = el("div", { class: "action-card", "data-proposal-id": ev.proposal_id });
      proposals.set(ev.proposal_id, card);
      (turn ? turn.cards : log).appendChild(card);
    }
    const buttons = [];
    if (ev.status === "pending" && ev.proposed_by === me) {
      const confirm = el("button", { type: "button", class: "danger", text: i18n.confirm });
      confirm.addEventListener("click", () => openConfirm(ev));
      const reject = el("button", { type: "button", text: i18n.reject });
      reject.addEventListener("click", () => send({ type: "reject_action", proposal_id: ev.proposal_id, reason: "" }));
      buttons.push(confirm, reject);
    }
    let result = null;
    if (ev.outcomes || ev.message) {
      const text = ev.message || (ev.outcomes || []).map((o) => o.job + ": " + (o.ok ? "OK" : o.message || o.code)).join("; ");
      result = el("p", { class: ev.ok ? "ok" : "error", text });
    }
    card.replaceChildren(
      el("h3", { text: proposalTitle(ev) }),
      el("p", { class: "muted", text: statusLabel(ev) + " · " + i18n.expires + " " + new Date(ev.expires_at).toLocaleTimeString() }),
      impactList(ev),
      ...(result ? [result] : []),
      el("div", { class: "card-buttons" }, buttons),
    );
  }

  function renderApproval(ev) {
    const list = document.getElementById("chat-approvals");
    if (!list) return;
    const existing = list.querySelector('[data-proposal-id="' + CSS.escape(ev.proposal_id) + '"]');
    if (existing) existing.remove();
    if (ev.status === "awaiting_approval" && ev.proposed_by !== me) {
      const approve = el("button", { type: "button", class: "danger", text: i18n.approve });
      approve.addEventListener("click", () => send({ type: "approve_action", proposal_id: ev.proposal_id }));
      const reject = el("button", { type: "button", text: i18n.reject });
      reject.addEventListener("click", () => {
        const reason = window.prompt(i18n.reasonPrompt) || "";
        send({ type: "reject_action", proposal_id: ev.proposal_id, reason: reason.slice(0, 1000) });
      });
      list.appendChild(el("li", { class: "action-card", "data-proposal-id": ev.proposal_id }, [
        el("h3", { text: proposalTitle(ev) }),
        el("p", { class: "muted", text: i18n.proposedBy + " " + ev.proposed_by }),
        impactList(ev),
        el("div", { class: "card-buttons" }, [approve, reject]),
      ]));
    }
    document.getElementById("chat-approvals-empty").hidden = list.children.length > 0;
  }

  function openConfirm(ev) {
    pendingDialog = ev;
    document.getElementById("confirm-title").textContent = proposalTitle(ev);
    document.getElementById("confirm-impact").replaceChildren(impactList(ev));
    document.getElementById("confirm-error").textContent = "";
    if (typeof dialog.showModal === "function") dialog.showModal();
  }

  document.getElementById("confirm-cancel").addEventListener("click", () => dialog.close());
  document.getElementById("confirm-form").addEventListener("submit", (e) => {
    const justification = document.getElementById("confirm-justification").value.trim();
    const ticket = document.getElementById("confirm-ticket").value.trim();
    if (justification.length < 5 || (root.dataset.ticketRequired === "1" && !ticket)) {
      e.preventDefault();
      document.getElementById("confirm-error").textContent = document.getElementById("confirm-justification").validationMessage || "…";
      return;
    }
    send({ type: "confirm_action", proposal_id: pendingDialog.proposal_id, justification, ticket });
    document.getElementById("confirm-justification").value = "";
    document.getElementById("confirm-ticket").value = "";
  });

  // --- socket ------------------------------------------------------------------------------------
  // Frames written while the socket is (re)connecting wait here instead of being lost.
  const outbox = [];

  function send(frame) {
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(frame));
    else outbox.push(frame);
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(scheme + location.host + root.dataset.wsPath);
    socket.addEventListener("open", () => {
      retry = 0;
      statusLine.textContent = activeTurn ? i18n.thinking : "";
      if (conversationId) send({ type: "resume", conversation_id: conversationId, after: lastSeq });
      while (outbox.length) send(outbox.shift());
    });
    socket.addEventListener("message", (message) => {
      try {
        handle(JSON.parse(message.data));
      } catch (err) {
        console.error(err);
      }
    });
    socket.addEventListener("close", (event) => {
      if (event.code === 4401 || event.code === 4403) {
        statusLine.textContent = event.code === 4401 ? "401" : "403";
        return;
      }
      statusLine.textContent = i18n.disconnected;
      retry = Math.min(retry + 1, 6);
      setTimeout(connect, 250 * 2 ** retry);
    });
  }

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const text = input.value.trim();
    if (!text || activeTurn) return;
    // The picked agent goes with every message ("" is Automatic); the server keeps it on the conversation.
    send({ type: "message", text, conversation_id: conversationId, ref: "msg", agent: agentSelect ? agentSelect.value : "" });
    lastSent = text;
    input.value = "";
  });
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) {
      e.preventDefault();
      form.requestSubmit();
    }
  });
  stopButton.addEventListener("click", () => send({ type: "stop", turn_id: activeTurn }));
  const resolveButton = document.getElementById("chat-resolve");
  resolveButton.addEventListener("click", () => {
    if (!conversationId) return;
    send({ type: "resolve", conversation_id: conversationId, ref: "resolve" });
    statusLine.textContent = i18n.resolved;
    resolveButton.disabled = true;
  });

  function showPurpose() {
    const option = agentSelect.selectedOptions[0];
    agentPurpose.textContent = option ? option.dataset.purpose || "" : "";
  }
  if (agentSelect) {
    agentSelect.addEventListener("change", showPurpose);
    showPurpose();
  }

  JSON.parse(document.getElementById("chat-approvals-data").textContent || "[]").forEach(renderApproval);
  connect();
})();

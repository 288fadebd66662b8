"""The chat page and where its citations lead: who may open them and what they show."""

from __future__ import annotations

import pytest

from chat.agent.masking import Masker
from resync_site.roles import Role


@pytest.mark.parametrize(("role", "status"), [(None, 403), (Role.REVIEWER, 403), (Role.COMPLIANCE, 403),
                                              (Role.OPERATOR, 200), (Role.SUPERVISOR, 200), (Role.ADMIN, 200)])
def test_chat_page_permission_matrix(make_user, client_for, role, status) -> None:
    user = make_user("someone", *([role] if role else []))
    assert client_for(user).get("/chat/").status_code == status


def test_anonymous_users_are_sent_to_sign_in(client) -> None:
    response = client.get("/chat/")
    assert response.status_code == 302 and "/account/signin/" in response["Location"]


def test_the_page_has_no_inline_script_and_names_its_socket(operator, client_for) -> None:
    response = client_for(operator).get("/chat/")
    html = response.content.decode()
    assert 'data-ws-path="/ws/chat/"' in html and "js/chat.js" in html and "css/chat.css" in html
    assert "<script>" not in html and " style=" not in html and "onclick" not in html
    assert 'href="/chat/"' in html  # the nav link


def test_approvers_see_the_approval_panel(supervisor, operator, client_for) -> None:
    assert "chat-approvals" in client_for(supervisor).get("/chat/").content.decode()
    assert 'id="chat-approvals"' not in client_for(operator).get("/chat/").content.decode()


def test_a_job_log_citation_opens_the_jobs_log_viewer_at_the_cited_lines(hwa, kb, ask, operator, client_for) -> None:
    turn = ask("por que o BKP_RMAN_FULL falhou?")
    citation = turn.citations.get(kind="joblog")
    assert citation.url.startswith("/jobs/") and f"/log/?from={citation.line_start}&to={citation.line_end}#L{citation.line_start}" in citation.url
    html = client_for(operator).get(citation.url.split("#")[0]).content.decode()
    assert "ORA-19502" in html
    assert html.count(" cited\"") == citation.line_end - citation.line_start + 1
    assert client_for(operator).get("/chat/joblog/x/").status_code == 404  # the chat has no viewer of its own


def test_masking_round_trip_and_streamed_restore() -> None:
    masker = Masker()
    text = "ssh batch@srvbatch01.corp.example from 10.0.0.7; user=jsilva; /home/maria/run.sh; log at app.log"
    masked = masker.mask(text)
    for secret in ("srvbatch01.corp.example", "10.0.0.7", "jsilva", "maria"):
        assert secret not in masked
    assert "run.sh" in masked and "app.log" in masked  # file names are not hosts
    assert masker.unmask(masked) == text
    stream = masker.stream()
    pieces = [masked[i:i + 3] for i in range(0, len(masked), 3)]
    assert "".join(stream.feed(p) for p in pieces) + stream.finish() == text

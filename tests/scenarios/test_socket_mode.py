"""Socket Mode: the same listeners answer envelopes delivered over the websocket."""

from __future__ import annotations

import logging

from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse

from handlers.ids import CardAction, CardRef
from tests.harness.bot_server import BotServer
from tests.harness.fake_slack import FakeSlack
from tests.harness.signing import block_action


class RecordingSocketClient:
    """Stands in for the websocket: records the envelopes' acknowledgements."""

    def __init__(self) -> None:
        self.logger = logging.getLogger("socket-test")
        self.responses: list[SocketModeResponse] = []

    def send_socket_mode_response(self, response: SocketModeResponse) -> None:
        self.responses.append(response)


def test_claim_and_command_over_socket_mode(bot: BotServer, fake_slack: FakeSlack) -> None:
    answer = bot.ingest({"source": "twitter", "id": "s1", "author": "dana",
                         "text": "my laptop won't boot since the update, help"})
    mention_id = answer.json()["ids"][0]
    [post] = fake_slack.wait_for("chat.postMessage")
    handler = SocketModeHandler(bot.runtime.bolt, app_token="xapp-1-test")
    client = RecordingSocketClient()

    # Socket Mode envelopes are not signed: the handler must accept them unsigned.
    click = block_action(CardAction.CLAIM, CardRef(m=mention_id).dump(), user="U0SOCK",
                         channel="C0SUPPORT", message_ts=fake_slack.ts_of(post))
    handler.handle(client, SocketModeRequest(type="interactive", envelope_id="env-1",
                                             payload=click))
    command = {"command": "/care", "text": "help", "user_id": "U0SOCK",
               "channel_id": "C0SUPPORT", "team_id": "T0FAKE", "response_url": "",
               "trigger_id": "1.2.3", "api_app_id": "A0CAREBOT"}
    handler.handle(client, SocketModeRequest(type="slash_commands", envelope_id="env-2",
                                             payload=command))

    assert [r.envelope_id for r in client.responses] == ["env-1", "env-2"]
    assert "/care" in str(client.responses[1].payload)
    [update] = fake_slack.wait_for("chat.update")
    assert "<@U0SOCK>" in str(update.params["blocks"])

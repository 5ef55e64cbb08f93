// Tool approval through the AI SDK's own chat logic: the runtime asks with
// tool-approval-request chunks, the page answers with addToolApprovalResponse, and
// sendAutomaticallyWhen (lastAssistantMessageIsCompleteWithApprovalResponses) posts the
// decisions. The runtime here is started with AGENT_RUNTIME__TOOLS_REQUIRING_APPROVAL=calc* and
// the test tool `guarded`, which always asks (tests/e2e/test_clients.py).
import assert from "node:assert/strict";
import { beforeEach, test } from "node:test";
import { DefaultChatTransport, lastAssistantMessageIsCompleteWithApprovalResponses, validateUIMessages } from "ai";
import { AUTH, devllm, sessionId } from "../lib/helpers.mjs";
import { Chat } from "../lib/chat.mjs";

const RUNTIME = process.env.APPROVAL_RUNTIME_URL;
if (!RUNTIME) throw new Error("APPROVAL_RUNTIME_URL is not set: run through tests/e2e/test_clients.py");
const api = `${RUNTIME}/agent/ai-sdk/chat`;

const newChat = (prefix) =>
  new Chat({
    id: sessionId(prefix),
    api,
    headers: AUTH,
    sendAutomaticallyWhen: lastAssistantMessageIsCompleteWithApprovalResponses,
  });

const call = (name, args, id) => ({ name, arguments: args, id });
const toolParts = (chat) => chat.lastMessage.parts.filter((p) => p.type.startsWith("tool-"));
const text = (message) => message.parts.filter((p) => p.type === "text").map((p) => p.text).join("");

/** Send a message; the answer must stop at the approval requests. */
async function sendAndPause(chat, content) {
  const finished = chat.finished();
  await chat.sendMessage({ text: content });
  const { message, isError } = await finished;
  assert.equal(isError, false, String(chat.error));
  assert.equal(chat.status, "ready");
  await validateUIMessages({ messages: chat.messages }); // the library's own message schema
  return message;
}

/** Answer approvals as the page does; the automatic request it triggers, once read. */
async function answer(chat, ...decisions) {
  const finished = chat.finished();
  for (const decision of decisions) await chat.addToolApprovalResponse(decision);
  const { message, isError } = await finished;
  assert.equal(isError, false, String(chat.error));
  await validateUIMessages({ messages: chat.messages });
  return message;
}

beforeEach(() => devllm.reset());

test("approve: the call waits, the approval runs it and the answer streams on", async () => {
  const chat = newChat("ai-approve");
  const paused = await sendAndPause(chat, '/tool calculator {"expr": "6*7"}');
  const [part] = toolParts(chat);
  assert.equal(part.type, "tool-calculator");
  assert.equal(part.state, "approval-requested");
  assert.deepEqual(part.approval, { id: part.toolCallId });
  assert.deepEqual(part.input, { expr: "6*7" });
  assert.deepEqual(paused.metadata.awaitingApproval, [part.toolCallId]);
  assert.equal(chat.bodies.length, 1, "no automatic request before the user answers");

  const message = await answer(chat, { id: part.approval.id, approved: true });
  // What useChat posted: the assistant message with the part in approval-responded.
  const posted = chat.bodies.at(-1).messages.at(-1).parts.find((p) => p.toolCallId === part.toolCallId);
  assert.equal(posted.state, "approval-responded");
  assert.equal(posted.approval.approved, true);
  const [ran] = toolParts(chat);
  assert.equal(ran.state, "output-available");
  assert.equal(ran.output, 42);
  assert.equal(message.id, paused.id, "the same assistant message goes on");
  assert.match(text(message), new RegExp(`${part.toolCallId} returned 42`));
});

test("deny: a tool-output-denied part, and the model reads the reason", async () => {
  await devllm.script({ tool_calls: [call("guarded", { text: "secret" }, "g1")] });
  const chat = newChat("ai-deny");
  await sendAndPause(chat, "go");
  assert.deepEqual(
    toolParts(chat).map((p) => [p.toolCallId, p.state]),
    [["g1", "approval-requested"]],
  );
  const message = await answer(chat, { id: "g1", approved: false, reason: "not today" });
  const [denied] = toolParts(chat);
  assert.equal(denied.state, "output-denied");
  assert.equal(denied.approval.approved, false);
  assert.equal(
    text(message),
    'Tool results: g1 returned {"error":"denied by the user","reason":"not today"}.',
  );
});

test("a mix in one step: what needs no approval runs at once; one request carries both answers", async () => {
  await devllm.script({
    tool_calls: [
      call("echo", { text: "now" }, "e1"),
      call("guarded", { text: "later" }, "g1"),
      call("calculator", { expr: "1+1" }, "k1"),
    ],
  });
  const chat = newChat("ai-mix");
  await sendAndPause(chat, "go");
  assert.deepEqual(
    toolParts(chat).map((p) => [p.toolCallId, p.state]),
    [
      ["e1", "output-available"],
      ["g1", "approval-requested"],
      ["k1", "approval-requested"],
    ],
  );
  const message = await answer(chat, { id: "k1", approved: true }, { id: "g1", approved: false, reason: "no" });
  assert.equal(chat.bodies.length, 2, "one request, once every approval was answered");
  assert.deepEqual(
    toolParts(chat).map((p) => [p.toolCallId, p.state, p.output]),
    [
      ["e1", "output-available", "now"],
      ["g1", "output-denied", undefined],
      ["k1", "output-available", 2],
    ],
  );
  assert.equal(
    text(message),
    'Tool results: e1 returned now; g1 returned {"error":"denied by the user","reason":"no"}; k1 returned 2.',
  );
});

test("the server's configuration is the final say: an output claimed for a waiting call is refused", async () => {
  const transport = new DefaultChatTransport({ api, headers: AUTH });
  const chat = newChat("ai-forged");
  await sendAndPause(chat, '/tool calculator {"expr": "2+2"}');
  const messages = structuredClone(chat.messages);
  const part = messages.at(-1).parts.find((p) => p.type === "tool-calculator");
  Object.assign(part, { state: "output-available", output: 4, approval: undefined });
  await assert.rejects(
    transport.sendMessages({ chatId: chat.id, messages, trigger: "submit-message", abortSignal: undefined }),
    /tool_call_not_found/,
  );
});

// The runtime's AG-UI events, read by @ag-ui/client's own HttpAgent: it validates every event
// and checks their order (a TEXT_MESSAGE_CONTENT needs its START, and so on).
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { beforeEach, test } from "node:test";
import { HttpAgent } from "@ag-ui/client";
import { AUTH, RUNTIME_URL, cancelTurn, devllm, eventually, sessionId, slowReply, storedMessages } from "../lib/helpers.mjs";

function agentFor(prefix) {
  return new HttpAgent({ url: `${RUNTIME_URL}/agent/ag-ui`, headers: AUTH, threadId: sessionId(prefix) });
}

function say(agent, content) {
  agent.addMessage({ id: randomUUID(), role: "user", content });
}

/** Run the agent; the events it received (after its own validation), and its outcome. */
async function run(agent, parameters = {}, onEvent) {
  const events = [];
  const runErrors = [];
  let error;
  let newMessages = [];
  try {
    ({ newMessages } = await agent.runAgent(parameters, {
      onEvent: async ({ event }) => {
        events.push(event);
        if (onEvent) await onEvent(event);
      },
      onRunErrorEvent: ({ event }) => {
        runErrors.push(event);
      },
      onRunFailed: ({ error: failure }) => {
        error = failure;
      },
    }));
  } catch (failure) {
    error = failure;
  }
  return { events, types: events.map((e) => e.type), newMessages, error, runErrors };
}

const assistantText = (messages) =>
  messages.filter((m) => m.role === "assistant").map((m) => m.content ?? "").join("");

const openTab = {
  name: "open_tab",
  description: "Open a URL in a new browser tab.",
  parameters: { type: "object", properties: { url: { type: "string" } }, required: ["url"] },
};

beforeEach(() => devllm.reset());

test("text: RUN_STARTED, one text message, RUN_FINISHED with usage", async () => {
  const agent = agentFor("agui-text");
  say(agent, "hello there");
  const { types, events, newMessages, error } = await run(agent);
  assert.equal(error, undefined);
  assert.equal(types[0], "RUN_STARTED");
  assert.equal(types[1], "TEXT_MESSAGE_START");
  assert.deepEqual(types.slice(-2), ["TEXT_MESSAGE_END", "RUN_FINISHED"]);
  assert.match(assistantText(newMessages), /You said: 'hello there'/);
  const finished = events.at(-1);
  assert.equal(finished.threadId, agent.threadId);
  assert.ok(finished.usage[0].totalTokens > 0, JSON.stringify(finished));
});

test("a server tool: its call and TOOL_CALL_RESULT, then the answer", async () => {
  const agent = agentFor("agui-server-tool");
  say(agent, '/tool calculator {"expr": "6*7"}');
  const { types, newMessages, error } = await run(agent);
  assert.equal(error, undefined);
  for (const type of ["TOOL_CALL_START", "TOOL_CALL_ARGS", "TOOL_CALL_END", "TOOL_CALL_RESULT"]) {
    assert.ok(types.includes(type), `${type} in ${types}`);
  }
  const call = newMessages.find((m) => m.role === "assistant" && m.toolCalls?.length).toolCalls[0];
  assert.equal(call.function.name, "calculator");
  const result = newMessages.find((m) => m.role === "tool");
  assert.equal(result.toolCallId, call.id);
  assert.equal(result.content, "42");
  assert.match(assistantText(newMessages), /returned 42/);
});

test("a frontend tool: declared in the run, run by the client, its result continues the thread", async () => {
  const agent = agentFor("agui-client-tool");
  say(agent, '/tool open_tab {"url": "https://example.com"}');
  const first = await run(agent, { tools: [openTab] });
  assert.equal(first.error, undefined);
  assert.ok(!first.types.includes("TOOL_CALL_RESULT"), "the runtime does not run it");
  assert.equal(first.types.at(-1), "RUN_FINISHED");
  const offered = (await devllm.requests()).at(-1).body.tools.map((t) => t.function.name);
  assert.ok(offered.includes("open_tab"), `${offered}`);
  const call = first.newMessages.find((m) => m.role === "assistant").toolCalls[0];
  assert.equal(call.function.name, "open_tab");
  assert.deepEqual(JSON.parse(call.function.arguments), { url: "https://example.com" });

  agent.addMessage({ id: randomUUID(), role: "tool", toolCallId: call.id, content: "tab opened" });
  const second = await run(agent, { tools: [openTab] });
  assert.equal(second.error, undefined);
  assert.match(assistantText(second.newMessages), new RegExp(`${call.id} returned tab opened`));
});

test("an upstream error: RUN_ERROR, which the client hands to onRunErrorEvent", async () => {
  await devllm.script({ tokens: ["partial ", "answer "], fault: { kind: "drop", after_tokens: 2 } });
  const agent = agentFor("agui-error");
  say(agent, "fail please");
  const { types, runErrors, newMessages } = await run(agent);
  assert.equal(types.at(-1), "RUN_ERROR");
  assert.equal(runErrors.length, 1);
  assert.match(runErrors[0].code, /upstream/);
  assert.match(runErrors[0].message, /\S/);
  assert.match(assistantText(newMessages), /partial answer/);
});

test("a cancel: RUN_FINISHED with the cancelled outcome, the partial answer kept", async () => {
  await devllm.script(slowReply);
  const agent = agentFor("agui-cancel");
  say(agent, "a long answer please");
  let cancelled = false;
  const { types, events, newMessages, error } = await run(agent, {}, async (event) => {
    if (event.type === "TEXT_MESSAGE_CONTENT" && !cancelled) {
      cancelled = true;
      await cancelTurn(agent.threadId);
    }
  });
  assert.equal(error, undefined);
  assert.deepEqual(types.slice(-2), ["TEXT_MESSAGE_END", "RUN_FINISHED"]);
  assert.deepEqual(events.at(-1).outcome, { type: "cancelled" });
  assert.match(assistantText(newMessages), /^w0 /);
  await eventually(
    async () => (await storedMessages(agent.threadId)).some((m) => m.status === "cancelled"),
    "the cancelled answer stored",
  );
});

test("regenerate (forwardedProps.regenerate): a new answer, the replaced one superseded", async () => {
  await devllm.script({ content: "The first answer." }, { content: "The second answer." });
  const agent = agentFor("agui-regenerate");
  say(agent, "tell me something");
  const first = await run(agent);
  assert.equal(assistantText(first.newMessages), "The first answer.");
  agent.setMessages(agent.messages.filter((m) => m.role === "user"));
  const second = await run(agent, { forwardedProps: { regenerate: true } });
  assert.equal(second.error, undefined);
  assert.equal(assistantText(second.newMessages), "The second answer.");
  const upstream = (await devllm.requests()).at(-1).body.messages;
  assert.ok(!JSON.stringify(upstream).includes("The first answer."));
  const stored = await storedMessages(agent.threadId);
  assert.deepEqual(
    stored.filter((m) => m.role === "assistant").map((m) => [m.content, m.superseded]),
    [
      ["The first answer.", true],
      ["The second answer.", false],
    ],
  );
});

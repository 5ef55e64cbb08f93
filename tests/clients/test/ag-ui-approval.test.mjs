// Tool approval through @ag-ui/client's own HttpAgent, against a runtime whose calculator and
// `guarded` calls wait for approval (tests/e2e/test_clients.py starts it). The run ends with
// the interrupt outcome; the agent keeps the interrupts (pendingInterrupts), refuses a run that
// leaves them unanswered, and the next run's `resume` (built by the library's buildResumeArray)
// answers them.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { beforeEach, test } from "node:test";
import { HttpAgent, buildResumeArray } from "@ag-ui/client";
import { AUTH, devllm, sessionId } from "../lib/helpers.mjs";

const RUNTIME = process.env.APPROVAL_RUNTIME_URL;
if (!RUNTIME) throw new Error("APPROVAL_RUNTIME_URL is not set: run through tests/e2e/test_clients.py");

function agentFor(prefix) {
  return new HttpAgent({ url: `${RUNTIME}/agent/ag-ui`, headers: AUTH, threadId: sessionId(prefix) });
}

/** Run the agent; what it received (after its own validation) and how the run finished. */
async function run(agent, parameters = {}) {
  const events = [];
  let finished;
  const { newMessages } = await agent.runAgent(parameters, {
    onEvent: ({ event }) => {
      events.push(event);
    },
    onRunFinishedEvent: (params) => {
      finished = params;
    },
  });
  return { events, types: events.map((e) => e.type), newMessages, finished };
}

/** Answer the agent's pending interrupts: `{[toolCallId]: {approved, reason?}}`. */
function resumeWith(agent, decisions) {
  const responses = {};
  for (const interrupt of agent.pendingInterrupts) {
    const decision = decisions[interrupt.toolCallId];
    assert.ok(decision, `no decision for ${interrupt.toolCallId}`);
    responses[interrupt.id] = { status: "resolved", payload: decision };
  }
  return { resume: buildResumeArray(agent.pendingInterrupts, responses) };
}

const text = (messages) =>
  messages.filter((m) => m.role === "assistant").map((m) => m.content ?? "").join("");
const toolResults = (messages) =>
  Object.fromEntries(messages.filter((m) => m.role === "tool").map((m) => [m.toolCallId, m.content]));
const call = (name, args, id) => ({ name, arguments: args, id });

beforeEach(() => devllm.reset());

test("approve: the interrupt outcome, then a resume runs the call and the answer streams", async () => {
  const agent = agentFor("agui-approve");
  agent.addMessage({ id: randomUUID(), role: "user", content: '/tool calculator {"expr": "6*7"}' });
  const paused = await run(agent);
  assert.ok(!paused.types.includes("TOOL_CALL_RESULT"), "the call waits");
  assert.equal(paused.finished.outcome, "interrupt");
  const toolCall = paused.newMessages.find((m) => m.role === "assistant").toolCalls[0];
  assert.equal(toolCall.function.name, "calculator");
  const [interrupt] = agent.pendingInterrupts;
  assert.deepEqual(paused.finished.interrupts, agent.pendingInterrupts);
  assert.equal(interrupt.toolCallId, toolCall.id);
  assert.equal(interrupt.reason, "tool_approval");
  assert.deepEqual(interrupt.metadata, { toolName: "calculator", arguments: { expr: "6*7" } });
  assert.deepEqual(interrupt.responseSchema.required, ["approved"]);

  // The library itself refuses a run that leaves the interrupt unanswered.
  await assert.rejects(agent.runAgent(), /pending interrupt/);

  const answered = await run(agent, resumeWith(agent, { [toolCall.id]: { approved: true } }));
  assert.equal(answered.finished.outcome, "success");
  assert.deepEqual(agent.pendingInterrupts, []);
  assert.deepEqual(toolResults(answered.newMessages), { [toolCall.id]: "42" });
  assert.equal(text(answered.newMessages), `Tool results: ${toolCall.id} returned 42.`);
});

test("deny: the model reads the denial and the reason, and goes on", async () => {
  await devllm.script({ tool_calls: [call("guarded", { text: "secret" }, "g1")] });
  const agent = agentFor("agui-deny");
  agent.addMessage({ id: randomUUID(), role: "user", content: "go" });
  const paused = await run(agent);
  assert.equal(paused.finished.outcome, "interrupt");
  assert.deepEqual(
    agent.pendingInterrupts.map((i) => i.id),
    ["g1"],
  );

  const answered = await run(agent, resumeWith(agent, { g1: { approved: false, reason: "not today" } }));
  assert.equal(answered.finished.outcome, "success");
  assert.deepEqual(toolResults(answered.newMessages), { g1: '{"error":"denied by the user: not today"}' });
  assert.equal(
    text(answered.newMessages),
    'Tool results: g1 returned {"error":"denied by the user","reason":"not today"}.',
  );
});

test("a mix: two calls in one step, one approved and one denied, answered in one resume", async () => {
  await devllm.script({
    tool_calls: [call("echo", { text: "now" }, "e1"), call("guarded", { text: "later" }, "g1"), call("calculator", { expr: "1+1" }, "k1")],
  });
  const agent = agentFor("agui-mix");
  agent.addMessage({ id: randomUUID(), role: "user", content: "go" });
  const paused = await run(agent);
  assert.deepEqual(toolResults(paused.newMessages), { e1: "now" }, "what needs no approval ran");
  assert.deepEqual(
    agent.pendingInterrupts.map((i) => [i.id, i.metadata.toolName]),
    [
      ["g1", "guarded"],
      ["k1", "calculator"],
    ],
  );

  const resume = resumeWith(agent, { g1: { approved: false, reason: "no" }, k1: { approved: true } });
  const answered = await run(agent, resume);
  assert.equal(answered.finished.outcome, "success");
  assert.deepEqual(toolResults(answered.newMessages), { g1: '{"error":"denied by the user: no"}', k1: "2" });
  assert.equal(
    text(answered.newMessages),
    'Tool results: e1 returned now; g1 returned {"error":"denied by the user","reason":"no"}; k1 returned 2.',
  );
  // The agent's thread is whole: each call is followed by its result.
  const results = toolResults(agent.messages);
  assert.deepEqual(Object.keys(results).sort(), ["e1", "g1", "k1"]);
});

// The runtime's UI message stream, read by the Vercel AI SDK's own DefaultChatTransport and
// readUIMessageStream: both validate every chunk and reject what the protocol does not allow.
import assert from "node:assert/strict";
import { beforeEach, test } from "node:test";
import {
  DefaultChatTransport,
  lastAssistantMessageIsCompleteWithToolCalls,
  readUIMessageStream,
} from "ai";
import { Chat } from "../lib/chat.mjs";
import { AUTH, RUNTIME_URL, cancelTurn, devllm, eventually, sessionId, slowReply, storedMessages } from "../lib/helpers.mjs";

const transport = new DefaultChatTransport({ api: `${RUNTIME_URL}/agent/ai-sdk/chat`, headers: AUTH });

let counter = 0;
const userMessage = (text) => ({ id: `user-${++counter}`, role: "user", parts: [{ type: "text", text }] });

/**
 * Post the chat as useChat does; read the answer with readUIMessageStream. ``onChunk`` sees each
 * chunk as it arrives. Returns the answer, the chunk types in order, and the errors reported.
 */
async function send(chatId, messages, { trigger = "submit-message", messageId, onChunk } = {}) {
  const stream = await transport.sendMessages({ chatId, messages, trigger, messageId, abortSignal: undefined });
  const types = [];
  const errors = [];
  const watched = stream.pipeThrough(
    new TransformStream({
      async transform(chunk, controller) {
        types.push(chunk.type);
        if (onChunk) await onChunk(chunk);
        controller.enqueue(chunk);
      },
    }),
  );
  const last = messages.at(-1);
  let message;
  for await (const snapshot of readUIMessageStream({
    stream: watched,
    message: last.role === "assistant" ? structuredClone(last) : undefined,
    onError: (error) => errors.push(error),
  })) {
    message = snapshot;
  }
  return { message, types, errors };
}

const text = (message) => message.parts.filter((p) => p.type === "text").map((p) => p.text).join("");

beforeEach(() => devllm.reset());

test("text: start, a step with a text block, finish with usage, [DONE]", async () => {
  const { message, types, errors } = await send(sessionId("ai-text"), [userMessage("hello there")]);
  assert.deepEqual(errors, []);
  assert.match(text(message), /You said: 'hello there'/);
  assert.equal(types[0], "start");
  assert.deepEqual(types.slice(1, 3), ["start-step", "text-start"]);
  assert.deepEqual(types.slice(-3), ["text-end", "finish-step", "finish"]);
  assert.ok(message.metadata.usage.total_tokens > 0, JSON.stringify(message.metadata));
});

test("a server tool: its input and output stream as provider-executed tool parts", async () => {
  const { message, types, errors } = await send(sessionId("ai-server-tool"), [
    userMessage('/tool calculator {"expr": "6*7"}'),
  ]);
  assert.deepEqual(errors, []);
  const tool = message.parts.find((p) => p.type === "tool-calculator");
  assert.equal(tool.state, "output-available");
  assert.equal(tool.providerExecuted, true);
  assert.deepEqual(tool.input, { expr: "6*7" });
  assert.equal(tool.output, 42);
  assert.match(text(message), /returned 42/);
  for (const type of ["tool-input-start", "tool-input-delta", "tool-input-available", "tool-output-available"]) {
    assert.ok(types.includes(type), `${type} in ${types}`);
  }
  assert.equal(types.filter((t) => t === "start-step").length, 2); // the tool step, the answer
});

test("a client tool round trip: the page's output continues the turn", async () => {
  const chat = sessionId("ai-client-tool");
  const user = userMessage('/tool read_file {"path": "notes.txt"}');
  const calls = [];
  const first = await send(chat, [user], {
    onChunk: (chunk) => chunk.type === "tool-input-available" && !chunk.providerExecuted && calls.push(chunk),
  });
  assert.deepEqual(first.errors, []);
  assert.equal(calls.length, 1, "onToolCall would run once: a client-side call");
  assert.equal(first.types.at(-1), "finish");
  const part = first.message.parts.find((p) => p.type === "tool-read_file");
  assert.equal(part.state, "input-available");
  assert.deepEqual(part.input, { path: "notes.txt" });

  // What addToolOutput does to the message; then sendAutomaticallyWhen decides to post it.
  Object.assign(part, { state: "output-available", output: "the notes" });
  const messages = [user, first.message];
  assert.equal(lastAssistantMessageIsCompleteWithToolCalls({ messages }), true);
  const second = await send(chat, messages);
  assert.deepEqual(second.errors, []);
  assert.match(text(second.message), new RegExp(`${part.toolCallId} returned the notes`));
  assert.equal(second.message.id, first.message.id, "the same assistant message goes on");
});

test("an upstream error: an error chunk the SDK reports", async () => {
  await devllm.script({ tokens: ["partial ", "answer "], fault: { kind: "drop", after_tokens: 2 } });
  const { message, types, errors } = await send(sessionId("ai-error"), [userMessage("fail please")]);
  assert.equal(errors.length, 1);
  assert.match(String(errors[0].message), /upstream/);
  assert.ok(types.includes("error"));
  assert.match(text(message), /partial answer/);
});

test("a cancel: the stream ends with an abort chunk, the partial answer is kept", async () => {
  await devllm.script(slowReply);
  const chat = sessionId("ai-cancel");
  let cancelled = false;
  const { message, types, errors } = await send(chat, [userMessage("a long answer please")], {
    onChunk: async (chunk) => {
      if (chunk.type === "text-delta" && !cancelled) {
        cancelled = true;
        await cancelTurn(chat);
      }
    },
  });
  assert.deepEqual(errors, []);
  assert.equal(types.at(-1), "abort");
  assert.ok(!types.includes("finish"));
  assert.match(text(message), /^w0 /);
  await eventually(async () => (await storedMessages(chat)).some((m) => m.status === "cancelled"), "the cancelled answer stored");
});

test("regenerate: a new answer; the replaced one is kept, superseded, and not sent upstream", async () => {
  await devllm.script({ content: "The first answer." }, { content: "The second answer." });
  const chat = sessionId("ai-regenerate");
  const user = userMessage("tell me something");
  const first = await send(chat, [user]);
  assert.equal(text(first.message), "The first answer.");
  // useChat's regenerate(): the assistant message is dropped, the rest is posted again.
  const second = await send(chat, [user], { trigger: "regenerate-message", messageId: first.message.id });
  assert.deepEqual(second.errors, []);
  assert.equal(text(second.message), "The second answer.");

  const upstream = (await devllm.requests()).at(-1).body.messages;
  assert.ok(!JSON.stringify(upstream).includes("The first answer."), JSON.stringify(upstream));
  const stored = await storedMessages(chat);
  assert.deepEqual(
    stored.map((m) => [m.role, m.content, m.superseded]),
    [
      ["user", "tell me something", false],
      ["assistant", "The first answer.", true],
      ["assistant", "The second answer.", false],
    ],
  );
});

test("resume: 204 when nothing runs", async () => {
  const stream = await transport.reconnectToStream({ chatId: sessionId("ai-resume") });
  assert.equal(stream, null);
});

test("resume: a page that left mid-answer; the next one's resumeStream gets all of it", async () => {
  const tokens = Array.from({ length: 60 }, (_, i) => `w${i} `);
  await devllm.script({ tokens, token_delay_ms: 40 });
  const chatId = sessionId("ai-resume-running");
  const api = `${RUNTIME_URL}/agent/ai-sdk/chat`;
  const user = userMessage("a long answer please");

  // The first page: its request is aborted after the first words (a reload does that).
  const first = new Chat({ id: chatId, api, headers: AUTH });
  const left = first.finished();
  void first.sendMessage(user);
  await eventually(() => text(first.lastMessage ?? user).startsWith("w0 w1 "), "the first words");
  await first.stop();
  assert.equal((await left).isAbort, true);

  // The next page: useChat({resume: true}) calls resumeStream() on mount, which GETs
  // {api}/{chatId}/stream (reconnectToStream) and replays it into a new assistant message.
  const next = new Chat({ id: chatId, api, headers: AUTH, messages: [user] });
  const resumed = next.finished();
  await next.resumeStream();
  const { message, isError } = await resumed;
  assert.equal(isError, false, String(next.error));
  assert.equal(text(message), tokens.join(""));
  assert.deepEqual(next.messages.map((m) => m.role), ["user", "assistant"]);
  assert.equal(message.metadata.finishReason, "stop");
  await eventually(async () => (await storedMessages(chatId)).some((m) => m.role === "assistant"), "the answer stored");
  const stored = await storedMessages(chatId);
  assert.equal(stored.at(-1).status, "complete");
  assert.equal(stored.at(-1).content, tokens.join(""));
  // And once it ended, nothing to resume.
  assert.equal(await transport.reconnectToStream({ chatId }), null);
});

import { useChat } from "@ai-sdk/react";
import {
  DefaultChatTransport,
  lastAssistantMessageIsCompleteWithApprovalResponses,
  lastAssistantMessageIsCompleteWithToolCalls,
} from "ai";
import { useEffect, useState } from "react";
import { storedHistory } from "./history.js";
import { readFile, WORKSPACE } from "./workspace.js";

/** The chat id is the runtime's session id; it lives in the URL so that a reload keeps it. */
function chatIdFromUrl() {
  const url = new URL(window.location.href);
  let id = url.searchParams.get("chat");
  if (!id) {
    id = `web-${crypto.randomUUID()}`;
    url.searchParams.set("chat", id);
    window.history.replaceState(null, "", url);
  }
  return id;
}

export function App() {
  const [chatId] = useState(chatIdFromUrl);
  const [history, setHistory] = useState(null);
  const [loadError, setLoadError] = useState(null);
  useEffect(() => {
    storedHistory(chatId).then(setHistory, (error) => setLoadError(String(error)));
  }, [chatId]);
  if (loadError) return <p className="error">{loadError}</p>;
  if (history === null) return <p>Loading…</p>;
  return <Chat chatId={chatId} history={history} />;
}

/** Continue the turn once every client-side call has its output and every call that waited
 * for the user has a decision: the runtime then runs the approved calls. */
function everyCallAnswered(options) {
  return (
    lastAssistantMessageIsCompleteWithToolCalls(options) ||
    lastAssistantMessageIsCompleteWithApprovalResponses(options)
  );
}

function Chat({ chatId, history }) {
  const {
    messages,
    sendMessage,
    status,
    stop,
    error,
    regenerate,
    addToolOutput,
    addToolApprovalResponse,
  } = useChat({
    id: chatId,
    messages: history,
    transport: new DefaultChatTransport({ api: "/agent/ai-sdk/chat" }),
    resume: true, // on load, GET /agent/ai-sdk/chat/{id}/stream: the running answer, if any
    sendAutomaticallyWhen: everyCallAnswered,
    onToolCall({ toolCall }) {
      if (toolCall.dynamic || toolCall.toolName !== "read_file") return;
      try {
        const output = readFile(toolCall.input);
        addToolOutput({ tool: "read_file", toolCallId: toolCall.toolCallId, output });
      } catch (failure) {
        addToolOutput({
          tool: "read_file",
          toolCallId: toolCall.toolCallId,
          state: "output-error",
          errorText: failure.message,
        });
      }
    },
  });
  const [input, setInput] = useState("");
  const busy = status === "submitted" || status === "streaming";

  async function stopTurn() {
    // The cancel endpoint stops the model; the stream then ends with an abort chunk.
    await fetch(`/agent/sessions/${encodeURIComponent(chatId)}/cancel`, { method: "POST" });
    stop();
  }

  return (
    <main>
      <header>
        <h1>Agent runtime · web chat</h1>
        <span className="chat-id">session {chatId}</span>
      </header>
      <aside>
        <h2>Workspace</h2>
        <ul>
          {Object.keys(WORKSPACE).map((path) => (
            <li key={path}>
              <code>{path}</code>
            </li>
          ))}
        </ul>
        <p className="hint">
          Try <code>/tool read_file {'{"path": "notes.txt"}'}</code>
        </p>
      </aside>
      <section className="messages" data-testid="messages">
        {messages.map((message) => (
          <article key={message.id} className={`message ${message.role}`} data-role={message.role}>
            {message.parts.map((part, index) => (
              <Part key={index} part={part} onDecision={addToolApprovalResponse} />
            ))}
            {message.metadata?.status && message.metadata.status !== "complete" && (
              <span className="status">{message.metadata.status}</span>
            )}
          </article>
        ))}
        {error && <p className="error">{error.message}</p>}
      </section>
      <form
        onSubmit={(event) => {
          event.preventDefault();
          if (!input.trim()) return;
          sendMessage({ text: input });
          setInput("");
        }}
      >
        <input
          aria-label="Message"
          value={input}
          placeholder="Say something"
          onChange={(event) => setInput(event.target.value)}
        />
        <button type="submit" disabled={busy}>
          Send
        </button>
        <button type="button" onClick={stopTurn} disabled={!busy}>
          Stop
        </button>
        <button type="button" onClick={() => regenerate()} disabled={busy || messages.length === 0}>
          Regenerate
        </button>
        <span className="state" data-testid="status">
          {status}
        </span>
      </form>
    </main>
  );
}

function Part({ part, onDecision }) {
  if (part.type === "text") return <p className="text">{part.text}</p>;
  if (part.type.startsWith("tool-")) {
    const name = part.type.slice("tool-".length);
    const where = part.providerExecuted ? "server" : "this page";
    return (
      <div className="tool" data-tool={name} data-state={part.state}>
        <code>
          {name}({JSON.stringify(part.input)})
        </code>{" "}
        {part.state.startsWith("output-") && part.state !== "output-denied" && (
          <span className="where">ran in {where}</span>
        )}
        {part.state === "approval-requested" && (
          <span className="approval">
            <button type="button" onClick={() => onDecision({ id: part.approval.id, approved: true })}>
              Approve
            </button>
            <button
              type="button"
              onClick={() =>
                onDecision({ id: part.approval.id, approved: false, reason: "denied in the page" })
              }
            >
              Deny
            </button>
          </span>
        )}
        {part.state === "output-available" && <pre>{JSON.stringify(part.output)}</pre>}
        {part.state === "output-error" && <pre className="error">{part.errorText}</pre>}
        {part.state === "output-denied" && <span className="denied">denied</span>}
      </div>
    );
  }
  return null;
}

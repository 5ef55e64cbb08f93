// The AI SDK's own chat logic (AbstractChat: what @ai-sdk/react's useChat runs), with its
// state in a plain object instead of React's.
import { AbstractChat, DefaultChatTransport } from "ai";

class PlainState {
  constructor(messages) {
    this.messages = messages;
    this.status = "ready";
    this.error = undefined;
  }
  pushMessage(message) {
    this.messages = [...this.messages, message];
  }
  popMessage() {
    this.messages = this.messages.slice(0, -1);
  }
  replaceMessage(index, message) {
    this.messages = this.messages.map((m, i) => (i === index ? message : m));
  }
  snapshot(thing) {
    return structuredClone(thing);
  }
}

/**
 * A chat on ``api``, as a page would hold it. ``bodies`` collects what its transport posts;
 * ``finished()`` resolves when the next response has been read.
 */
export class Chat extends AbstractChat {
  constructor({ api, headers, messages = [], ...init }) {
    const bodies = [];
    const transport = new DefaultChatTransport({
      api,
      headers,
      fetch: (url, request) => {
        if (request.method === "POST") bodies.push(JSON.parse(request.body));
        return fetch(url, request);
      },
    });
    const waiting = [];
    super({
      ...init,
      transport,
      state: new PlainState(messages),
      onFinish: (event) => waiting.shift()?.(event),
    });
    this.bodies = bodies;
    this.waiting = waiting;
  }

  finished() {
    return new Promise((resolve) => this.waiting.push(resolve));
  }
}

/**
 * Streamed answers from the backend: `POST` with `Accept: text/event-stream`, read as server-sent events.
 *
 * The backend sends `delta` events (`{"text": ...}`, pieces of the answer as the model writes them), then
 * exactly one `result` (the same JSON the plain call answers) or `error` (`{"status", "detail"}`). Checks made
 * before the model is called (validation, rate limits, caller proof) answer with a plain HTTP status instead.
 * Aborting the signal closes the request; the backend then stops the model's call too.
 *
 * No dependency: fetch, a stream reader and a few lines of SSE parsing (EventSource cannot POST).
 */

export interface StreamOptions {
  /** Called with each piece of text as it arrives, in order. */
  onDelta?: (text: string) => void;
  /** Abort to stop reading and close the request. */
  signal?: AbortSignal;
  /** Extra request headers (e.g. the caller's proof). */
  headers?: Record<string, string>;
}

/** The backend refused the request before streaming (validation, rate limit, ...): its status and JSON body. */
export class StreamRefusedError extends Error {
  constructor(
    readonly response: Response,
    readonly body: unknown,
  ) {
    super(`HTTP ${response.status}`);
    this.name = 'StreamRefusedError';
  }
}

/** The stream ended with an `error` event: the status the plain call would have got, and its message. */
export class StreamFailedError extends Error {
  constructor(
    readonly status: number,
    readonly detail: string,
  ) {
    super(detail);
    this.name = 'StreamFailedError';
  }
}

interface ServerEvent {
  event: string;
  data: string;
}

/** Split complete events off the front of `buffer`; returns them and what is left (an incomplete event). */
export const parseEvents = (buffer: string): [ServerEvent[], string] => {
  const events: ServerEvent[] = [];
  const blocks = buffer.replace(/\r\n?/g, '\n').split('\n\n');
  const rest = blocks.pop() ?? '';
  for (const block of blocks) {
    let event = 'message';
    const data: string[] = [];
    for (const line of block.split('\n')) {
      if (line.startsWith(':')) continue; // a comment (keep-alive)
      const colon = line.indexOf(':');
      const field = colon === -1 ? line : line.slice(0, colon);
      const value = colon === -1 ? '' : line.slice(colon + 1).replace(/^ /, '');
      if (field === 'event') event = value;
      else if (field === 'data') data.push(value);
    }
    if (data.length > 0) events.push({ event, data: data.join('\n') });
  }
  return [events, rest];
};

const parseJson = (text: string): unknown => {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
};

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/**
 * POST `body` as JSON to `url` and read the streamed answer. Resolves with the `result` event's JSON; rejects
 * with StreamRefusedError (an HTTP error before the stream), StreamFailedError (an `error` event), the
 * signal's AbortError, or a TypeError when the backend cannot be reached. A backend that answers plain JSON
 * (no streaming) resolves with that JSON.
 */
export const postStream = async (url: string, body: unknown, options: StreamOptions = {}): Promise<unknown> => {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Accept: 'text/event-stream', ...options.headers },
    body: JSON.stringify(body),
    signal: options.signal,
  });
  if (!response.ok) throw new StreamRefusedError(response, parseJson(await response.text()));
  if (!(response.headers.get('Content-Type') ?? '').startsWith('text/event-stream') || response.body === null) {
    return parseJson(await response.text());
  }
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      const [events, rest] = parseEvents(buffer + value);
      buffer = rest;
      for (const { event, data } of events) {
        const parsed = parseJson(data);
        if (event === 'delta' && isRecord(parsed) && typeof parsed.text === 'string') {
          options.onDelta?.(parsed.text);
        } else if (event === 'result') {
          return parsed;
        } else if (event === 'error') {
          const status = isRecord(parsed) && typeof parsed.status === 'number' ? parsed.status : 502;
          const detail = isRecord(parsed) && typeof parsed.detail === 'string' ? parsed.detail : 'The answer failed.';
          throw new StreamFailedError(status, detail);
        }
      }
    }
  } finally {
    // Whatever ended the loop (result, error, abort), stop reading: this closes the request if still open.
    reader.cancel().catch(() => undefined);
  }
  // Neither result nor error: the connection was cut (a proxy or the backend went away mid-answer).
  throw new StreamFailedError(502, 'The answer was cut short; try again.');
};

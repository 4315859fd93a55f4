/**
 * AI sub-task suggestions, through the {{ cookiecutter.project_name }}.
 *
 * A drop-in replacement for the AI Studio version of this file: the same export with the same
 * signature, but the browser no longer talks to Gemini. It posts the task to the backend, which
 * holds the Gemini API key and calls Gemini for it. Nothing secret lives in the frontend any more:
 * the only setting is the backend's URL, which anyone can see.
 */
import type { AISubTaskSuggestion } from '../types';
import { postStream, StreamFailedError, StreamRefusedError } from './stream';

// Set VITE_BACKEND_URL in .env (see .env.example) when the backend is not on this machine.
const BACKEND_URL: string = (import.meta.env.VITE_BACKEND_URL || '{{ cookiecutter.__public_url }}').replace(/\/+$/, '');

// The backend gives up on Gemini after {{ cookiecutter.gemini_timeout_seconds }} s (retries included) and answers 504; the margin
// covers queueing behind Nginx, so the backend's own answer normally arrives before this fires.
export const REQUEST_TIMEOUT_MS = {{ cookiecutter.__client_timeout_seconds }} * 1000;
{%- if cookiecutter.caller_check != "none" %}
{%- if cookiecutter.caller_check == "firebase_app_check" %}

/**
 * Where the backend's proof comes from: a Firebase App Check token, sent as X-Firebase-AppCheck. The backend
 * answers 401 to requests without a valid one. This file does not import Firebase; the app wires it in once:
 *
 *   setCallerTokenProvider(async () => (await getToken(appCheck, false)).token);
 */
export type CallerTokenProvider = () => Promise<string>;
const proofHeaders = (token: string): Record<string, string> => ({ 'X-Firebase-AppCheck': token });
{%- else %}

/**
 * Where the backend's proof comes from: the signed-in user's ID token, sent as `Authorization: Bearer`.
 * The backend answers 401 to requests without a valid one. This file does not import an auth SDK; the
 * app wires it in once, e.g. with Firebase Auth:
 *
 *   setCallerTokenProvider(async () => (auth.currentUser ? auth.currentUser.getIdToken() : null));
 */
export type CallerTokenProvider = () => Promise<string | null>;
const proofHeaders = (token: string): Record<string, string> => ({ Authorization: `Bearer ${token}` });
{%- endif %}

let callerTokenProvider: CallerTokenProvider | undefined;

/** Set (or, with undefined, clear) the function that gives a fresh token for each request. */
export const setCallerTokenProvider = (provider: CallerTokenProvider | undefined): void => {
  callerTokenProvider = provider;
};

/** The proof for one request; none when no provider is set (the backend's 401 then says what is missing). */
const callerHeaders = async (): Promise<Record<string, string>> => {
  if (!callerTokenProvider) return {};
  let token: string | null;
  try {
    token = await callerTokenProvider();
  } catch (error) {
    const why = error instanceof Error ? `: ${error.message}` : '';
    throw new Error(`Could not get the token the AI service asks for${why}`);
  }
  return token ? proofHeaders(token) : {};
};
{%- endif %}

/** Ask the backend for 2 to 5 sub-tasks. Rejects with an Error whose message can be shown as is. */
export const breakDownTaskWithAI = async (
  taskTitle: string,
  taskDescription?: string,
): Promise<AISubTaskSuggestion[]> => {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), REQUEST_TIMEOUT_MS);
  try {
    let response: Response;
{%- if cookiecutter.caller_check != "none" %}
    const proof = await callerHeaders();
{%- endif %}
    try {
      response = await fetch(`${BACKEND_URL}/api/breakdown-task`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json'{% if cookiecutter.caller_check != "none" %}, ...proof{% endif %} },
        body: JSON.stringify({ title: taskTitle, description: taskDescription }),
        signal: controller.signal,
      });
    } catch (error) {
      if (controller.signal.aborted) throw error; // the timeout: reported below
      // fetch gives no detail here on purpose: a refused CORS preflight looks the same as a down server.
      throw new Error(
        `Could not reach the AI service at ${BACKEND_URL}. Check that the backend is running ` +
          "and that its ALLOWED_ORIGINS includes this page's origin (CORS).",
      );
    }
    const body = await readJson(response);
    if (!response.ok) throw new Error(errorMessage(response, body));
    return toSuggestions(body);
  } catch (error) {
    if (controller.signal.aborted) {
      throw new Error(`The AI service did not answer within ${REQUEST_TIMEOUT_MS / 1000} seconds; try again later.`);
    }
    throw error;
  } finally {
    clearTimeout(timer);
  }
};

/**
 * The same sub-tasks, streamed: `onDelta` gets the answer's text as Gemini writes it (raw JSON here, for a
 * "thinking..." display), and the promise resolves with the checked suggestions. Aborting `signal` closes the
 * request, and the backend stops Gemini's call. Rejects with an Error whose message can be shown as is.
 */
export const breakDownTaskWithAIStream = async (
  taskTitle: string,
  taskDescription?: string,
  options: { onDelta?: (text: string) => void; signal?: AbortSignal } = {},
): Promise<AISubTaskSuggestion[]> => {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), REQUEST_TIMEOUT_MS);
  const stop = (): void => controller.abort();
  options.signal?.addEventListener('abort', stop);
  try {
{%- if cookiecutter.caller_check != "none" %}
    const proof = await callerHeaders();
{%- endif %}
    const body = await postStream(
      `${BACKEND_URL}/api/breakdown-task`,
      { title: taskTitle, description: taskDescription },
      { onDelta: options.onDelta, signal: controller.signal{% if cookiecutter.caller_check != "none" %}, headers: proof{% endif %} },
    );
    return toSuggestions(body);
  } catch (error) {
    if (options.signal?.aborted) throw error; // the caller's own abort: its AbortError, as fetch gives it
    if (controller.signal.aborted) {
      throw new Error(`The AI service did not answer within ${REQUEST_TIMEOUT_MS / 1000} seconds; try again later.`);
    }
    if (error instanceof StreamRefusedError) throw new Error(errorMessage(error.response, error.body));
    if (error instanceof StreamFailedError) throw new Error(`The AI service failed (HTTP ${error.status}): ${error.detail}`);
    if (error instanceof TypeError) {
      throw new Error(
        `Could not reach the AI service at ${BACKEND_URL}. Check that the backend is running ` +
          "and that its ALLOWED_ORIGINS includes this page's origin (CORS).",
      );
    }
    throw error;
  } finally {
    clearTimeout(timer);
    options.signal?.removeEventListener('abort', stop);
  }
};

/** The body as JSON, or undefined when it is empty or not JSON (an HTML error page from a proxy). */
const readJson = async (response: Response): Promise<unknown> => {
  const text = await response.text();
  try {
    return text ? (JSON.parse(text) as unknown) : undefined;
  } catch {
    return undefined;
  }
};

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** FastAPI's `detail`: a sentence from the backend, or a validation list of {loc, msg}. */
const describeDetail = (body: unknown): string | undefined => {
  if (!isRecord(body)) return undefined;
  const { detail } = body;
  if (typeof detail === 'string' && detail.trim()) return detail.trim();
  if (Array.isArray(detail)) {
    const problems = detail.filter(isRecord).map((problem) => {
      const where = Array.isArray(problem.loc) ? problem.loc.filter((part) => part !== 'body').join('.') : '';
      const what = typeof problem.msg === 'string' ? problem.msg : 'is invalid';
      return where ? `${where}: ${what}` : what;
    });
    if (problems.length > 0) return problems.join('; ');
  }
  return undefined;
};

/**
 * Seconds from a Retry-After header, when the page may read it: a cross-origin page sees it only if
 * the backend lists it in Access-Control-Expose-Headers, so the message must make sense without it.
 */
const retryAfterSeconds = (response: Response): number | undefined => {
  const value = response.headers.get('Retry-After');
  if (!value) return undefined;
  const seconds = /^\d+$/.test(value.trim()) ? Number(value) : (Date.parse(value) - Date.now()) / 1000;
  return Number.isFinite(seconds) && seconds > 0 ? Math.ceil(seconds) : undefined;
};

const errorMessage = (response: Response, body: unknown): string => {
  const status = `HTTP ${response.status}${response.statusText ? ` ${response.statusText}` : ''}`;
  const detail = describeDetail(body);
{%- if cookiecutter.caller_check != "none" %}
  if (response.status === 401) {
    // The backend wants proof of who calls it (see setCallerTokenProvider above): say so plainly.
    const why = (detail ?? 'no valid token was sent').replace(/[.\s]+$/, '');
    return `The AI service refused this request (${status}): ${why}.`;
  }
{%- endif %}
  if (response.status === 429) {
    const why = (detail ?? 'the rate limit was reached').replace(/[.\s]+$/, '');
    const wait = retryAfterSeconds(response);
    if (wait !== undefined) return `Too many requests to the AI service (${status}): ${why}. Please try again in ${wait} seconds.`;
    // The backend's own message already says to retry later; a proxy's HTML page says nothing.
    const when = /retry|try again/i.test(why) ? '' : ' Please try again later.';
    return `Too many requests to the AI service (${status}): ${why}.${when}`;
  }
  return detail === undefined ? `The AI service failed (${status}).` : `The AI service failed (${status}): ${detail}`;
};

/** Check the answer's shape instead of trusting it: the UI renders these fields. */
const toSuggestions = (body: unknown): AISubTaskSuggestion[] => {
  if (!Array.isArray(body)) throw new Error('The AI service sent an unexpected answer (not a list of sub-tasks).');
  return body.map((item): AISubTaskSuggestion => {
    if (!isRecord(item) || typeof item.title !== 'string') {
      throw new Error('The AI service sent an unexpected answer (a sub-task without a title).');
    }
    // The backend sends `null` for "no description"; the type wants the field left out.
    return typeof item.description === 'string' ? { title: item.title, description: item.description } : { title: item.title };
  });
};

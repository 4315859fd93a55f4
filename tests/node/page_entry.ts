// The test page's script: calls the app's (patched) service once and shows the outcome in #out.
// tests/test_frontend.py copies it next to the app's services/ folder and bundles it with esbuild.
// With ?token=..., it hands that token to the service's setCallerTokenProvider (bakes with a caller check).
// With ?stream=1 it calls the streaming variant and counts the deltas that arrive before the result
// (#out's data-deltas, their text in data-streamed); with &abort=1 it aborts after the first delta.
// The app's own function comes from its patched service; the caller proof and the streamed variant from the
// backend client the patch put beside it (geminiBackend.ts).
import * as backend from './services/geminiBackend';
import * as service from './services/geminiService';

const params = new URLSearchParams(window.location.search);
const out = document.getElementById('out') as HTMLElement;
const token = params.get('token');
type Provide = (provider: () => Promise<string>) => void;
const provide = (backend as { setCallerTokenProvider?: Provide }).setCallerTokenProvider;
if (token !== null && provide) provide(async () => token);

const title = params.get('title') ?? '';
const description = params.get('description') ?? undefined;
const controller = new AbortController();
let streamed = '';
let deltas = 0;
const onDelta = (text: string): void => {
  streamed += text;
  deltas += 1;
  if (params.has('abort')) controller.abort();
};
const answer = params.has('stream')
  ? backend.breakDownTaskWithAiStream({ taskTitle: title, taskDescription: description }, { onDelta, signal: controller.signal })
  : service.breakDownTaskWithAI(title, description);
const show = (state: 'ok' | 'error', text: string): void => {
  out.dataset.deltas = String(deltas); // the deltas that arrived before the outcome
  out.dataset.streamed = streamed;
  out.textContent = text;
  out.dataset.state = state; // last: the driver waits for it
};
answer.then(
  (suggestions) => show('ok', JSON.stringify(suggestions)),
  (error: unknown) => {
    if (!(error instanceof Error)) show('error', `not an Error: ${String(error)}`);
    else show('error', error.name === 'AbortError' ? `AbortError: ${error.message}` : error.message);
  },
);

// The test page's script: calls the app's (patched) service once and shows the outcome in #out.
// tests/test_frontend.py copies it next to the app's services/ folder and bundles it with esbuild.
// With ?token=..., it hands that token to the service's setCallerTokenProvider (bakes with a caller check).
import * as service from './services/geminiService';

const params = new URLSearchParams(window.location.search);
const out = document.getElementById('out') as HTMLElement;
const token = params.get('token');
type Provide = (provider: () => Promise<string>) => void;
const provide = (service as { setCallerTokenProvider?: Provide }).setCallerTokenProvider;
if (token !== null && provide) provide(async () => token);

service.breakDownTaskWithAI(params.get('title') ?? '', params.get('description') ?? undefined).then(
  (suggestions) => {
    out.textContent = JSON.stringify(suggestions);
    out.dataset.state = 'ok';
  },
  (error: unknown) => {
    out.textContent = error instanceof Error ? error.message : `not an Error: ${String(error)}`;
    out.dataset.state = 'error';
  },
);

// The test page's script: calls the app's (patched) service once and shows the outcome in #out.
// tests/test_frontend.py copies it next to the app's services/ folder and bundles it with esbuild.
import { breakDownTaskWithAI } from './services/geminiService';

const params = new URLSearchParams(window.location.search);
const out = document.getElementById('out') as HTMLElement;

breakDownTaskWithAI(params.get('title') ?? '', params.get('description') ?? undefined).then(
  (suggestions) => {
    out.textContent = JSON.stringify(suggestions);
    out.dataset.state = 'ok';
  },
  (error: unknown) => {
    out.textContent = error instanceof Error ? error.message : `not an Error: ${String(error)}`;
    out.dataset.state = 'error';
  },
);

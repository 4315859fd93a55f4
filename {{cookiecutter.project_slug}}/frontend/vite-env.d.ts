// Types for `import.meta.env` as the new services/geminiService.ts uses it. An app that already has
// `/// <reference types="vite/client" />` does not need this file; keeping both is harmless.
interface ImportMetaEnv {
  readonly VITE_BACKEND_URL?: string;
}

interface ImportMeta {
  readonly env: ImportMetaEnv;
}

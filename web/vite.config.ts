import { defineConfig } from "vite";

// The bundle is committed to src/connectrpc_catalog/static/ so that
// `pip install .` serves the UI without Node.js. scripts/check_web.sh rebuilds
// it into a temporary directory (CATALOG_WEB_OUT) and compares, so the build
// must be deterministic: pinned dependencies (package-lock.json), content
// hashes in file names, no timestamps, no source maps.
const outDir = process.env.CATALOG_WEB_OUT ?? "../src/connectrpc_catalog/static";

export default defineConfig({
  // Relative asset URLs: the UI works at "/" and behind a path prefix alike.
  base: "./",
  oxc: {
    jsx: { runtime: "automatic", importSource: "preact" },
  },
  build: {
    outDir,
    emptyOutDir: true,
    assetsDir: "assets",
    sourcemap: false,
    target: "es2022",
    cssCodeSplit: false,
    modulePreload: { polyfill: false },
    reportCompressedSize: false,
  },
  server: {
    // `npm run dev` proxies the API to a catalog started on :8080.
    proxy: {
      "/catalog.v1.CatalogService": "http://127.0.0.1:8080",
    },
  },
});

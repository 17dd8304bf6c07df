/**
 * `fetch` for the API client that hands streamed responses to connect-web in small
 * pieces, one task each. connect-web decodes every envelope of a network chunk in one
 * synchronous loop, and a fast stream arrives in chunks of hundreds of kilobytes
 * (thousands of messages): measured in Chromium, one such chunk blocked the page for
 * 400+ ms. Cut into PIECE-byte pieces with a macrotask between them, the decoding runs in
 * short tasks and input and frames get their turn. Only streaming responses
 * (`application/connect+…`) are re-chunked; unary ones pass through untouched.
 */
import { yieldToBrowser } from "./messageLog";

const PIECE = 16 * 1024;

/** Pieces handed over (the tests read it). */
export const sliceStats = { pieces: 0, chunks: 0 };

export const slicedFetch: typeof fetch = async (input, init) => {
  const res = await fetch(input, init);
  const type = res.headers.get("content-type") ?? "";
  if (!res.body || !type.startsWith("application/connect+")) return res;
  const reader = res.body.getReader();
  let chunk: Uint8Array | null = null;
  let at = 0;
  const body = new ReadableStream<Uint8Array>(
    {
      async pull(ctrl) {
        if (!chunk || at >= chunk.length) {
          const next = await reader.read();
          if (next.done) {
            ctrl.close();
            return;
          }
          chunk = next.value;
          at = 0;
          sliceStats.chunks++;
        } else {
          await yieldToBrowser(); // the rest of a big chunk: in a task of its own
        }
        const end = Math.min(chunk.length, at + PIECE);
        ctrl.enqueue(chunk.subarray(at, end));
        sliceStats.pieces++;
        at = end;
      },
      cancel(reason) {
        return reader.cancel(reason);
      },
    },
    { highWaterMark: 0 },
  );
  return new Response(body, { status: res.status, statusText: res.statusText, headers: res.headers });
};

/** Vite's inline workers (`import W from "./x?worker&inline"`): the worker's code is
 * bundled into the page's script and started from a blob URL (no extra asset). */
declare module "*?worker&inline" {
  const WorkerConstructor: { new (): Worker };
  export default WorkerConstructor;
}

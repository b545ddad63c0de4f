/** Module the dispatcher loads for `edgeecho images build`; the command lives in images.ts. */
export { run, usage } from './images.js';

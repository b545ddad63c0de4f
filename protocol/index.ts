export * from './codec.js';
export * from './errors.js';
export * from './messages.js';
export * from './data-frame.js';
export * from './frame-scanner.js';
export * from './read-slab.js';

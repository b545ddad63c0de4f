// Preloaded by `npm test`. uvu's reporter reads `err.details` as a string (`details.split`); EdgeechoError carries
// details as a map, so a test failing with one crashed the reporter, which ended the run early, silently, exit 0.
// This hook renders such details as JSON in uvu's formatter instead.
import { register } from 'node:module';

register('./uvu-details-hook.mjs', import.meta.url);

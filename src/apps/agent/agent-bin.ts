/** The `keyward-agent` executable's entry point (bundled by scripts/build-agent.mjs): runs agent-main.ts. */
import { runAgentMainProcess } from './agent-main.js';

runAgentMainProcess();

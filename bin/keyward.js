#!/usr/bin/env node
// The `keyward` command's entry point is bin/keyward.cjs. This file keeps its former name working (links
// made by an earlier docs/server-install.md point here): it runs the same entry point, only after Node's
// ES module loader has come up, which `keyward ssh` started through bin/keyward.cjs does not wait for.
import './keyward.cjs';

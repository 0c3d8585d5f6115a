// The JavaScript script runtime: the plugin arrives as source through
// `init` (config keys wasmpipe.script and wasmpipe.script-name, set by the
// host from a .js pipeline entry). A reload re-runs init: no compile.
import { makeExport, wasmpipe } from "./export.js";

const state = { plugin: {}, name: "script.js" };

export const typedTransform = makeExport(state, (config) => {
  const pairs = new Map(config);
  const source = pairs.get("wasmpipe.script");
  if (source === undefined) {
    throw new Error(
      "this is wasmpipe's JavaScript script runtime: name a .js file in the pipeline and the host passes it here",
    );
  }
  state.name = pairs.get("wasmpipe.script-name") ?? "script.js";
  state.plugin = wasmpipe.evaluate(source, state.name, wasmpipe);
  return config.filter(([k]) => k !== "wasmpipe.script" && k !== "wasmpipe.script-name");
});

// Package config reads mergekit merge configurations (YAML) into a validated [Config].
//
// The format is mergekit's (https://github.com/arcee-ai/mergekit, "Merge Configuration"),
// as design.md §6 describes it: merge_method, base_model, models (a list of
// {model, parameters}) or slices (a list of {sources: [{model, layer_range, parameters}],
// parameters}), top-level parameters, dtype, out_dtype and tokenizer_source. [Parse] checks
// the parameters against the method's declarations in the registry of package
// freelunch/core/merge: names, kinds (number, boolean, enum), scopes (a global parameter may
// not be set per model), ranges, and that required parameters are set somewhere.
//
// A parameter value is a scalar, a gradient (a list of numbers interpolated across layers)
// or a list of {filter, value} items, where a filter is a substring of the tensor name and
// the first match wins; [Value.Resolve] evaluates one for a tensor, [LayerOf] finds a
// tensor's layer number and [ResolveParam] applies the precedence of per-model, slice and
// top-level parameters.
//
// Unlike mergekit, which ignores keys it does not know, Parse rejects every unknown key and
// every parameter the method does not declare, naming it and its line, with a suggestion
// for near misses. Every error is an [*Error] wrapping [ErrConfig].
//
// Differences from mergekit, all deliberate:
//   - Model references are local paths. mergekit's mapping form ({model: {path: P}}, as
//     written into model cards) is read; LoRA references ("model+lora", lora:), revisions
//     ("model@rev", revision:) and override_architecture are errors.
//   - A bare string in models ("- some/model") is an error, as in mergekit (each item must
//     be a mapping with a model key).
//   - tokenizer_source: union, the tokenizer section's tokens and pad_to_multiple_of,
//     chat_template, modules, and per-slice base_model and residual_weight are errors
//     ("not supported"). The tokenizer section's source is read as tokenizer_source.
//   - The top-level key name (mergekit-multi's document label) is accepted and ignored.
//     Files with several YAML documents (mergekit-multi) are errors.
//   - A gradient must hold numbers; mergekit's lists of strings (stepped, not interpolated)
//     are errors. A filter "*" matches every tensor, as in mergekit, and is stored as "".
//     A single {filter, value} mapping is read as a one-item filter list.
//   - Quoted numbers ("0.5") are strings and so are wrong-typed for a numeric parameter;
//     booleans must be true or false. Non-finite numbers are errors.
//   - YAML merge keys (<<) are errors; anchors and aliases are allowed.
//
// The required-parameter check here is coarse: a required per-model parameter (weight)
// must be set for every model other than base_model in one of the places that apply to it.
// Whether it resolves for every tensor (filters may not match) is checked by the planner,
// as are the base model listed in a linear merge and everything that needs the models'
// files (layer counts against layer_range, tensor names).
//
// Package config opens no files: callers pass the file's bytes.
package config

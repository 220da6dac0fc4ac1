// Package safetensors reads and writes safetensors files and the sharded models built from them.
//
// The format (https://github.com/huggingface/safetensors#format) is an 8-byte little-endian
// header length n, n bytes of UTF-8 JSON mapping tensor names to {"dtype", "shape",
// "data_offsets"} (plus an optional "__metadata__" of strings), then the tensors' bytes,
// little-endian and row-major, back to back.
//
// [Open] validates a header strictly before anything else is read and returns a [File] whose
// tensors are read through io.ReaderAt in chunks of the caller's choosing, so a file of any size
// costs memory in proportion to its header. [NewWriter] streams a file out: the header first,
// computed from the full list of tensors by [Header], then each tensor's bytes in order, with no
// seeking. [SplitShards] and [IndexJSON] lay out a sharded model as Hugging Face tools write
// one; [OpenModel] opens a model folder, an index or a single file through an [FS], natively
// [OSFS] and in the browser the dropped files.
//
// The package does not convert dtypes (see package dtype), map files into memory, edit files
// in place, or read other formats (GGUF, pickle): opening those fails with ErrFormat or
// ErrHeaderTooLarge.
package safetensors

package engine

import (
	"context"
	"io"
	"runtime"
	"testing"

	"freelunch/core/config"
	"freelunch/core/plan"
	"freelunch/core/safetensors"
	"freelunch/internal/testmodel"
)

type discardSink struct{}

func (discardSink) Create(string) (io.Writer, error) { return io.Discard, nil }

// Allocations must not grow with the number of chunks (issue 6: none per chunk in steady
// state): the same merge in 8× as many chunks allocates about the same.
func TestAllocationsPerChunk(t *testing.T) {
	if runtime.GOOS == "js" {
		t.Skip("allocation counts are checked natively")
	}
	if raceEnabled {
		t.Skip("sync.Pool drops items at random under the race detector")
	}
	spec := testmodel.Small
	spec.Hidden, spec.Intermediate, spec.Vocab = 32, 80, 128
	dir := writeFamily(t, spec)
	for _, m := range []struct {
		name string
		args []config.Params
	}{
		{"task_arithmetic", []config.Params{{"weight": scalar(0.5)}, {"weight": scalar(0.5)}}},
		{"ties", []config.Params{{"weight": scalar(1.0), "density": scalar(0.3)}, {"weight": scalar(0.5), "density": scalar(0.3)}}},
		{"dare_ties", []config.Params{{"weight": scalar(1.0), "density": scalar(0.3)}, {"weight": scalar(0.5), "density": scalar(0.3)}}},
		{"della", []config.Params{{"weight": scalar(1.0), "density": scalar(0.3)}, {"weight": scalar(0.5), "density": scalar(0.3)}}},
	} {
		p, err := plan.Build(cfgFor(dir, m.name, nil, m.args...), safetensors.OSFS{}, plan.Options{})
		if err != nil {
			t.Fatal(err)
		}
		allocs := func(chunk int) (float64, int64) {
			var chunks int64
			for _, e := range p.Entries {
				size := int64(chunk)
				if e.Merge != nil && len(e.Shape) > 1 && m.name == "della" {
					size = max(size, e.N/e.Shape[0]) // della's chunks are whole rows
				}
				chunks += (e.N + size - 1) / size
			}
			return testing.AllocsPerRun(1, func() {
				if _, err := Run(context.Background(), p, discardSink{}, Options{ChunkSize: chunk, Threads: 2}); err != nil {
					t.Fatal(err)
				}
			}), chunks
		}
		few, nFew := allocs(2048)
		many, nMany := allocs(128)
		perChunk := (many - few) / float64(nMany-nFew)
		t.Logf("%s: %.0f allocations in %d chunks, %.0f in %d chunks: %.3f per extra chunk", m.name, few, nFew, many, nMany, perChunk)
		if perChunk > 0.05 {
			t.Errorf("%s allocates %.3f times per chunk", m.name, perChunk)
		}
		p.Close()
	}
}

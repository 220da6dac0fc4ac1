//go:build !(js || wasip1)

// Command bench measures freelunch merges against the I/O floor (make bench).
//
//	bench [-size 1G] [-cache .cache/bench] [-bin bin/freelunch] [-runs 3]
//
// It generates, once, a Llama-shaped BF16 base and two fine-tunes of about the given size
// each into the cache folder, then for task_arithmetic, ties and dare_ties runs
// `freelunch merge` and the I/O floor (`bench floor`: read every input byte and write as
// many output bytes as the merge, with no arithmetic; `bench floor-sync` also flushes them
// to the disk, as the merge does), each as a child process with a warm page cache, in
// turn, -runs times, and prints for each the run of median wall time: wall time, the
// merge's CPU time (user + system), input throughput, peak RSS and the ratio merge ÷ floor.
package main

import (
	"cmp"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"freelunch/core/config"
	"freelunch/core/dtype"
	_ "freelunch/core/merge"
	"freelunch/core/plan"
	"freelunch/core/safetensors"
	"freelunch/internal/testmodel"
	"freelunch/internal/writeback"
)

func main() {
	if len(os.Args) > 1 && (os.Args[1] == "floor" || os.Args[1] == "floor-sync") {
		if err := floor(os.Args[2], os.Args[3], os.Args[1] == "floor-sync"); err != nil {
			fmt.Fprintln(os.Stderr, "bench floor:", err)
			os.Exit(1)
		}
		return
	}
	size := flag.String("size", "1G", "model size: 1G or 3G")
	cache := flag.String("cache", ".cache/bench", "folder for generated models (git-ignored)")
	bin := flag.String("bin", "bin/freelunch", "the freelunch binary")
	methods := flag.String("methods", "task_arithmetic,ties,dare_ties", "methods to run")
	runs := flag.Int("runs", 3, "runs of each measurement; the median is reported")
	flag.Parse()
	if err := bench(*size, *cache, *bin, strings.Split(*methods, ","), max(1, *runs)); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// specFor returns a Llama-shaped BF16 family of about size bytes per model.
func specFor(size string) (testmodel.Spec, error) {
	s := testmodel.Spec{Hidden: 2048, Intermediate: 5632, Vocab: 32000, DType: dtype.BF16, Seed: 1, Shards: 1}
	switch size {
	case "1G": // 8 layers: 538M parameters, 1.08 GB
		s.Layers = 8
	case "3G": // 26 layers: 1.49G parameters, 2.98 GB
		s.Layers, s.Shards = 26, 2
	default:
		return s, fmt.Errorf("size %q: want 1G or 3G", size)
	}
	return s, nil
}

func bench(size, cache, bin string, methods []string, runs int) error {
	spec, err := specFor(size)
	if err != nil {
		return err
	}
	dir, err := filepath.Abs(filepath.Join(cache, size))
	if err != nil {
		return err
	}
	if err := generate(spec, dir); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	host, _ := os.Hostname()
	fmt.Printf("machine: %s, %d cores; models: 3 × %s BF16 (%d layers, hidden %d) in %s; median of %d runs\n\n",
		host, numCPU(), size, spec.Layers, spec.Hidden, dir, runs)
	fmt.Printf("%-16s %9s %9s %9s %11s %9s %9s %11s %7s %11s %7s\n", "method", "time", "CPU", "GB/s", "peak RSS", "floor", "floor GB/s", "floor RSS", "ratio", "floor+sync", "ratio")
	for _, m := range methods {
		cfg := filepath.Join(dir, m+".yml")
		if err := os.WriteFile(cfg, []byte(configFor(m, dir)), 0o644); err != nil {
			return err
		}
		inBytes, err := inputBytes(cfg)
		if err != nil {
			return err
		}
		// The plain floor and floor+sync write into folders of their own, so that each plain
		// floor run, which writes through the page cache, lands in the pages its previous
		// run's file held, removed just before it. When a floor+sync run removed that file
		// and a merge followed, those pages stayed free for seconds, and on a VM whose host
		// takes back memory left free that long (free page reporting), writing into it cost
		// several times more than on a machine that keeps its memory (BENCHMARKS.md, twelfth
		// session): the floor measured the VM, not the I/O.
		out := filepath.Join(dir, "out-"+m)
		floorOut := filepath.Join(dir, "floor-"+m)
		syncOut := filepath.Join(dir, "floor-sync-"+m)
		for _, d := range []string{out, floorOut, syncOut} {
			os.RemoveAll(d)
		}
		// Warm the page cache with one floor pass, then measure the floors and the merge
		// in turn, runs times, each from a clean output folder.
		if _, err := measure(self, "floor", cfg, floorOut); err != nil {
			return err
		}
		var fr, fsr, mrr []run
		for range runs {
			for _, c := range []struct {
				into *[]run
				out  string
				bin  string
				args []string
			}{
				{&fr, floorOut, self, []string{"floor", cfg, floorOut}},
				{&fsr, syncOut, self, []string{"floor-sync", cfg, syncOut}},
				{&mrr, out, bin, []string{"merge", "--quiet", "--overwrite", cfg, out}},
			} {
				os.RemoveAll(c.out)
				r, err := measure(c.bin, c.args...)
				if err != nil {
					return err
				}
				*c.into = append(*c.into, r)
			}
		}
		f, fs, mr := median(fr), median(fsr), median(mrr)
		gbs := func(d time.Duration) float64 { return float64(inBytes) / 1e9 / d.Seconds() }
		fmt.Printf("%-16s %8.2fs %8.2fs %9.2f %8.0f MB %8.2fs %9.2f %8.0f MB %6.2f× %10.2fs %6.2f×\n",
			m, mr.wall.Seconds(), mr.cpu.Seconds(), gbs(mr.wall), float64(mr.rss)/1e6,
			f.wall.Seconds(), gbs(f.wall), float64(f.rss)/1e6, mr.wall.Seconds()/f.wall.Seconds(),
			fs.wall.Seconds(), mr.wall.Seconds()/fs.wall.Seconds())
		fmt.Printf("    runs in order: merge %s; floor %s; floor+sync %s\n", walls(mrr), walls(fr), walls(fsr))
		fmt.Printf("    %s merge --quiet --overwrite %s %s\n    %s floor %s %s\n    %s floor-sync %s %s\n",
			bin, cfg, out, self, cfg, floorOut, self, cfg, syncOut)
		for _, d := range []string{out, floorOut, syncOut} {
			os.RemoveAll(d)
		}
	}
	return nil
}

func numCPU() int { return len(cpuList()) }

func cpuList() []int {
	var s []int
	for i := 0; i < 1024; i++ {
		if _, err := os.Stat(fmt.Sprintf("/sys/devices/system/cpu/cpu%d", i)); err != nil {
			break
		}
		s = append(s, i)
	}
	return s
}

// run is one measured child process.
type run struct {
	wall time.Duration
	cpu  time.Duration // user + system
	rss  int64         // peak, bytes
}

// median returns the run of median wall time (the upper one of an even count).
func median(rs []run) run {
	s := slices.Clone(rs)
	slices.SortFunc(s, func(a, b run) int { return cmp.Compare(a.wall, b.wall) })
	return s[len(s)/2]
}

// walls lists the runs' wall times, in the order they ran.
func walls(rs []run) string {
	var b strings.Builder
	for i, r := range rs {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%.2fs", r.wall.Seconds())
	}
	return b.String()
}

// measure runs a child process and returns its wall time, CPU time and peak RSS.
func measure(bin string, args ...string) (run, error) {
	cmd := exec.Command(bin, args...)
	cmd.Stderr = os.Stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return run{}, fmt.Errorf("%s %s: %w", bin, strings.Join(args, " "), err)
	}
	el := time.Since(start)
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	return run{wall: el, cpu: cpu, rss: ru.Maxrss * 1024}, nil
}

func configFor(method, dir string) string {
	base, ft1, ft2 := filepath.Join(dir, "base"), filepath.Join(dir, "ft1"), filepath.Join(dir, "ft2")
	density := ""
	if method != "task_arithmetic" {
		density = ", density: 0.3"
	}
	return fmt.Sprintf("merge_method: %s\nbase_model: %s\nmodels:\n  - model: %s\n    parameters: {weight: 0.6%s}\n  - model: %s\n    parameters: {weight: 0.4%s}\n",
		method, base, ft1, density, ft2, density)
}

// generate writes the family into dir unless a stamp says it is there.
func generate(spec testmodel.Spec, dir string) error {
	stamp := filepath.Join(dir, "complete")
	if _, err := os.Stat(stamp); err == nil {
		return nil
	}
	fmt.Fprintf(os.Stderr, "generating models into %s (once)...\n", dir)
	for name, v := range map[string]testmodel.Variant{
		"base": {}, "ft1": {Seed: 11, Scale: 0.002}, "ft2": {Seed: 22, Scale: 0.003},
	} {
		if err := spec.Write(filepath.Join(dir, name), v); err != nil {
			return err
		}
	}
	return os.WriteFile(stamp, nil, 0o644)
}

func loadPlan(cfgPath string) (*plan.Plan, error) {
	data, err := os.ReadFile(cfgPath)
	if err != nil {
		return nil, err
	}
	cfg, err := config.Parse(data)
	if err != nil {
		return nil, err
	}
	return plan.Build(cfg, safetensors.OSFS{}, plan.Options{})
}

func inputBytes(cfgPath string) (int64, error) {
	p, err := loadPlan(cfgPath)
	if err != nil {
		return 0, err
	}
	defer p.Close()
	return p.InputBytes(), nil
}

// floor reads every input byte of the merge cfgPath describes, in the engine's chunk
// size, and writes as many bytes as the merge's output shards into one file under out;
// with sync, it then flushes that file to the disk, as `freelunch merge` does its output
// before renaming it into place.
func floor(cfgPath, out string, sync bool) error {
	p, err := loadPlan(cfgPath)
	if err != nil {
		return err
	}
	defer p.Close()
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(out, "floor.bin"))
	if err != nil {
		return err
	}
	defer f.Close()
	var w io.Writer = f
	var wb *writeback.Writer
	if sync {
		wb = writeback.New(f) // as the merge writes its output
		w = wb
	}
	const chunk = 1 << 20
	buf := make([]byte, chunk*8)
	var written int64
	for _, e := range p.Entries {
		var outLeft = e.Bytes
		for _, in := range e.Inputs {
			size := in.Tensor.Size()
			for off := int64(0); off < size; off += int64(len(buf)) {
				n := min(int64(len(buf)), size-off)
				if err := in.Model.ReadAt(in.Tensor, buf[:n], off); err != nil {
					return err
				}
				if outLeft > 0 {
					k := min(n, outLeft)
					if _, err := w.Write(buf[:k]); err != nil {
						return err
					}
					outLeft -= k
					written += k
				}
			}
		}
	}
	if wb != nil {
		if err := wb.Sync(); err != nil {
			return err
		}
		return wb.Close()
	}
	return f.Close()
}

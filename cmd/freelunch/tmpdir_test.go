package main

import (
	"bytes"
	"errors"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// skipWithoutLocks skips a test of stale-folder removal where freelunch takes no folder
// locks (and so removes nothing).
func skipWithoutLocks(t *testing.T) {
	f, err := lockFolder(t.TempDir())
	if errors.Is(err, errNoLocks) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
}

// writeQuickMerge writes the matrix's two good models into dir and a linear config of
// them, and returns the config's path.
func writeQuickMerge(t *testing.T, dir string) string {
	t.Helper()
	for _, name := range []string{"good", "bad"} {
		p := filepath.Join(dir, name, "model.safetensors")
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, goodFile, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfgPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(strings.ReplaceAll(linearConfig, "DIR", dir)), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfgPath
}

// TestStaleTempRemoved kills a merge with SIGKILL, which leaves its temporary folder, and
// checks that the next merge to the same OUT_DIR removes that folder and succeeds.
func TestStaleTempRemoved(t *testing.T) {
	skipWithoutLocks(t)
	dir := t.TempDir()
	bin := buildCLI(t, dir)
	slow := writeSlowMerge(t, filepath.Join(dir, "slow"))
	out := filepath.Join(dir, "out")
	cmd, exited, _ := startSlowMerge(t, bin, slow, out)
	time.Sleep(100 * time.Millisecond)
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-exited
	left := tempFolders(t, out)
	if len(left) != 1 {
		t.Fatalf("after SIGKILL: temporary folders %q, want the killed merge's one", left)
	}

	quick := writeQuickMerge(t, filepath.Join(dir, "quick"))
	var stderr bytes.Buffer
	next := exec.Command(bin, "merge", quick, out)
	next.Stderr = &stderr
	if err := next.Run(); err != nil {
		t.Fatalf("merge after a killed one: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "removed "+left[0]) {
		t.Errorf("stderr does not say that %s was removed:\n%s", left[0], stderr.String())
	}
	if got := readModel(t, out); len(got["model.layers.0.w"]) != 4 {
		t.Errorf("OUT_DIR after the second merge holds %v", got)
	}
	if tmp := tempFolders(t, out); len(tmp) > 0 {
		t.Errorf("temporary folders left after the second merge: %q", tmp)
	}
}

// TestLiveTempKept runs a merge into OUT_DIR while a slow one into the same OUT_DIR is
// writing: the second must leave the first's temporary folder alone, and the first must
// finish. (The second fails, on a NaN input, after making its own temporary folder, so
// that it does not take OUT_DIR from the first.)
func TestLiveTempKept(t *testing.T) {
	skipWithoutLocks(t)
	dir := t.TempDir()
	bin := buildCLI(t, dir)
	slow := writeSlowMerge(t, filepath.Join(dir, "slow"))
	out := filepath.Join(dir, "out")
	cmd, exited, slowErr := startSlowMerge(t, bin, slow, out)
	defer cmd.Process.Kill()
	live := tempFolders(t, out)

	quick := writeQuickMerge(t, filepath.Join(dir, "quick"))
	if err := os.WriteFile(filepath.Join(dir, "quick", "bad", "model.safetensors"), stFile(goodHeader, f32s(0.5, float32(math.NaN()), 2, 0.25, 1, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	second := exec.Command(bin, "merge", quick, out)
	second.Stderr = &stderr
	if err := second.Run(); err == nil || !strings.Contains(stderr.String(), "NaN/Inf") {
		t.Fatalf("second merge: %v, want the NaN error\n%s", err, stderr.String())
	}
	select {
	case err := <-exited:
		t.Fatalf("the slow merge ended (%v) before the second one finished: nothing was tested; stderr:\n%s", err, slowErr.String())
	default:
	}
	for _, p := range live {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("the live merge's temporary folder is gone after the second merge: %v", err)
		}
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("slow merge: %v\n%s", err, slowErr.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatal("slow merge still running after 60s")
	}
	if got := readModel(t, out); len(got["model.layers.0.w"]) != 4<<20 {
		t.Errorf("OUT_DIR holds %d elements of model.layers.0.w, want %d", len(got["model.layers.0.w"]), 4<<20)
	}
	if tmp := tempFolders(t, out); len(tmp) > 0 {
		t.Errorf("temporary folders left: %q", tmp)
	}
}

// TestStaleTempNames: a merge removes only unlocked folders named exactly like its own
// temporary folders ("."+base(OUT_DIR)+".freelunch-tmp-"+digits), not a folder locked by
// a live merge (here, by this process through another open file), nor look-alikes.
func TestStaleTempNames(t *testing.T) {
	skipWithoutLocks(t)
	dir := t.TempDir()
	cfgPath := writeQuickMerge(t, dir)
	out := filepath.Join(dir, "out")
	stale := filepath.Join(dir, ".out.freelunch-tmp-123")
	keep := []string{
		filepath.Join(dir, ".out.freelunch-tmp-77"),  // locked below
		filepath.Join(dir, ".out.freelunch-tmp-12a"), // not digits
		filepath.Join(dir, ".out.freelunch-tmp-"),    // no digits
		filepath.Join(dir, ".outx.freelunch-tmp-5"),  // another OUT_DIR
		filepath.Join(dir, "out.freelunch-tmp-5"),    // no dot
	}
	for _, p := range append(keep, stale) {
		if err := os.MkdirAll(filepath.Join(p, "sub"), 0o755); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(p, "sub", "model.safetensors"), goodFile, 0o644)
	}
	link := filepath.Join(dir, ".out.freelunch-tmp-9")
	if err := os.Symlink(filepath.Join(dir, "good"), link); err != nil {
		t.Log(err) // no symbolic links here; the rest still tests
	} else {
		keep = append(keep, filepath.Join(link, "model.safetensors"))
	}
	lock, err := lockFolder(keep[0])
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	_, stderr, err := runCLI(t, "merge", cfgPath, out)
	if err != nil {
		t.Fatalf("merge: %v\n%s", err, stderr)
	}
	if _, err := os.Lstat(stale); !os.IsNotExist(err) {
		t.Errorf("stale %s not removed (%v)", stale, err)
	}
	if !strings.Contains(stderr, "note: removed "+stale+",") {
		t.Errorf("stderr does not say that %s was removed:\n%s", stale, stderr)
	}
	for _, p := range keep {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s removed: %v", p, err)
		}
	}
}

// TestOutputSynced checks the order that makes OUT_DIR survive a crash whole or not at
// all: every output file is fsynced (once, at its close) and the temporary folder too
// before OUT_DIR appears, and the parent folder after.
func TestOutputSynced(t *testing.T) {
	dir := t.TempDir()
	cfgPath := writeQuickMerge(t, dir)
	os.WriteFile(filepath.Join(dir, "good", "config.json"), []byte(`{"num_hidden_layers": 1}`), 0o644)
	out := filepath.Join(dir, "out")
	exists := func() bool { _, err := os.Stat(out); return err == nil }
	var events []string
	origCreate, origSync := createOutput, syncDir
	t.Cleanup(func() { createOutput, syncDir = origCreate, origSync })
	created := 0
	createOutput = func(name string) (io.WriteCloser, error) {
		f, err := origCreate(name)
		if err != nil {
			return nil, err
		}
		created++
		return &recordSync{File: f.(*os.File), events: &events, out: exists}, nil
	}
	syncDir = func(d string) error {
		what := "sync parent"
		if d != dir {
			what = "sync tmp"
		}
		if exists() {
			what += " (OUT_DIR exists)"
		}
		events = append(events, what)
		return origSync(d)
	}
	if _, stderr, err := runCLI(t, "merge", cfgPath, out); err != nil {
		t.Fatalf("merge: %v\n%s", err, stderr)
	}
	var want []string
	for range created {
		want = append(want, "sync file")
	}
	want = append(want, "sync tmp", "sync parent (OUT_DIR exists)")
	if strings.Join(events, "; ") != strings.Join(want, "; ") || created < 2 {
		t.Errorf("%d files created; syncs: %q, want %q", created, events, want)
	}
}

// recordSync is an output file that records its fsyncs and whether OUT_DIR existed then.
type recordSync struct {
	*os.File
	events *[]string
	out    func() bool
}

func (f *recordSync) Sync() error {
	what := "sync file"
	if f.out() {
		what += " (OUT_DIR exists)"
	}
	*f.events = append(*f.events, what)
	return f.File.Sync()
}

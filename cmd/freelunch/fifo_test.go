//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestNamedPipeInputs: a named pipe where a model file or the config belongs made
// `freelunch merge` and `inspect` wait forever in open(2), for a writer that never comes,
// and Ctrl-C could not end the wait. They must fail at once with one line.
func TestNamedPipeInputs(t *testing.T) {
	for _, tc := range []struct {
		name string
		pipe string   // relative to DIR
		args []string // DIR stands for the folder
		want string
	}{
		{"model file", "bad/model.safetensors", []string{"merge", "DIR/config.yml", "DIR/out"}, "open DIR/bad/model.safetensors: not a regular file"},
		{"model file, inspect", "bad/model.safetensors", []string{"inspect", "DIR/bad"}, "open DIR/bad/model.safetensors: not a regular file"},
		{"shard index", "bad/model.safetensors.index.json", []string{"merge", "DIR/config.yml", "DIR/out"}, "DIR/bad/model.safetensors.index.json: not a regular file"},
		{"config", "config.yml", []string{"merge", "DIR/config.yml", "DIR/out"}, "open DIR/config.yml: not a regular file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			os.MkdirAll(filepath.Join(dir, "good"), 0o755)
			os.MkdirAll(filepath.Join(dir, "bad"), 0o755)
			os.WriteFile(filepath.Join(dir, "good", "model.safetensors"), goodFile, 0o644)
			if tc.pipe != "config.yml" {
				os.WriteFile(filepath.Join(dir, "config.yml"), []byte(strings.ReplaceAll(linearConfig, "DIR", dir)), 0o644)
			}
			if err := syscall.Mkfifo(filepath.Join(dir, tc.pipe), 0o644); err != nil {
				t.Skipf("mkfifo: %v", err)
			}
			args := make([]string, len(tc.args))
			for i, a := range tc.args {
				args[i] = strings.ReplaceAll(a, "DIR", dir)
			}
			var stdout, stderr bytes.Buffer
			done := make(chan int, 1)
			go func() { done <- exitCode(run(context.Background(), args, &stdout, &stderr), &stderr) }()
			var code int
			select {
			case code = <-done:
			case <-time.After(10 * time.Second):
				t.Fatalf("freelunch %s still waiting after 10 s", strings.Join(tc.args, " "))
			}
			msg := stderr.String()
			if code != 1 || strings.Count(msg, "\n") != 1 || !strings.Contains(msg, strings.ReplaceAll(tc.want, "DIR", dir)) {
				t.Errorf("exit %d, stderr %q; want exit 1 and one line saying %q", code, msg, tc.want)
			}
			checkNoTemp(t, dir)
			if _, err := os.Stat(filepath.Join(dir, "out")); !os.IsNotExist(err) {
				t.Errorf("OUT_DIR exists (%v)", err)
			}
		})
	}
}

package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"runtime"
	"strings"
	"testing"
)

func run(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := newRootCmd(&out, &errOut)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), errOut.String(), err
}

func TestVersion(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		check func(t *testing.T, out string)
	}{
		{"text", []string{"version"}, func(t *testing.T, out string) {
			for _, want := range []string{"tmbox:", "go:       " + runtime.Version(), "istio:    1."} {
				if !strings.Contains(out, want) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}
		}},
		{"json", []string{"version", "-o", "json"}, func(t *testing.T, out string) {
			var got struct{ Version, GoVersion, Istio, IstioModule string }
			if err := json.Unmarshal([]byte(out), &got); err != nil {
				t.Fatalf("not JSON: %v\n%s", err, out)
			}
			if got.Version == "" || got.GoVersion != runtime.Version() || !strings.HasPrefix(got.Istio, "1.") {
				t.Errorf("unexpected version info %+v", got)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, _, err := run(t, tt.args...)
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, out)
		})
	}
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{"bad output format", []string{"version", "-o", "yaml"}},
		{"unknown flag", []string{"version", "--nope"}},
		{"extra argument", []string{"version", "extra"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, _, err := run(t, tt.args...)
			if err == nil {
				t.Fatalf("want an error, got output %q", out)
			}
			var ue *usageError
			if !errors.As(err, &ue) {
				t.Errorf("want a usage error, got %T: %v", err, err)
			}
		})
	}
}

func TestCompletion(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish", "powershell"} {
		t.Run(shell, func(t *testing.T) {
			out, _, err := run(t, "completion", shell)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out, "tmbox") || len(out) < 200 {
				t.Errorf("completion script for %s looks wrong: %q", shell, out)
			}
		})
	}
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	"k8s.io/klog/v2"
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
		{"bad output format", []string{"version", "-o", "xml"}},
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

func TestVersionsJSON(t *testing.T) {
	out, _, err := run(t, "versions", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Releases []struct {
			Name       string
			Kubernetes string
			Components map[string]string
			Images     int
		}
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	want := map[string]map[string]string{
		"1.21": {"knative-serving": "1.21.3", "knative-eventing": "1.21.4", "net-istio": "1.21.4", "istio": "1.28.6", "triggermesh": "1.27.0", "triggermesh-core": "1.5.3"},
		"1.22": {"knative-serving": "1.22.1", "knative-eventing": "1.22.2", "net-istio": "1.22.1", "istio": "1.29.2", "triggermesh": "1.27.0", "triggermesh-core": "1.5.3"},
		"1.23": {"knative-serving": "1.23.0", "knative-eventing": "1.23.0", "net-istio": "1.23.0", "istio": "1.30.3", "triggermesh": "1.27.0", "triggermesh-core": "1.5.3"},
	}
	if len(got.Releases) != 3 {
		t.Fatalf("got %d releases", len(got.Releases))
	}
	for _, r := range got.Releases {
		for name, v := range want[r.Name] {
			if r.Components[name] != v {
				t.Errorf("%s %s = %q, want %q", r.Name, name, r.Components[name], v)
			}
		}
		if r.Images < 100 || !strings.HasPrefix(r.Kubernetes, ">=1.3") {
			t.Errorf("%s: images %d, kubernetes %q", r.Name, r.Images, r.Kubernetes)
		}
	}
	for _, format := range []string{"table", "yaml"} {
		out, _, err := run(t, "versions", "-o", format)
		if err != nil || !strings.Contains(out, "1.23") {
			t.Errorf("-o %s: %v\n%s", format, err, out)
		}
	}
}

func TestPlanCommand(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    []string // in stdout
		wantErr string   // "" = success
		usage   bool
	}{
		{"two hops", []string{"plan", "--from", "1.21", "--to", "1.23"},
			[]string{"Hop 1/2: 1.21→1.22", "Hop 2/2: 1.22→1.23", "knative-serving   1.21.3  1.22.1  upgrade", "istio             1.29.2  1.30.3  upgrade", "triggermesh       1.27.0  1.27.0  unchanged"}, "", false},
		{"old Kubernetes refuses the second hop", []string{"plan", "--from", "1.21", "--to", "1.23", "--kubernetes-version", "1.33.2"},
			[]string{"Hop 2/2: 1.22→1.23 (Kubernetes >=1.34, <=1.36) — REFUSED", "refused: release 1.23 needs Kubernetes >=1.34, <=1.36 and the cluster runs 1.33.2: upgrade Kubernetes to 1.34 or newer first"},
			"plan refused", false},
		{"no-op", []string{"plan", "--from", "1.22", "--to", "1.22"}, []string{"Nothing to do"}, "", false},
		{"downgrade needs the flag", []string{"plan", "--from", "1.23", "--to", "1.22"}, nil, "--allow-downgrade", false},
		{"downgrade allowed", []string{"plan", "--from", "1.23", "--to", "1.22", "--allow-downgrade"}, []string{"Downgrade hop 1/1: 1.23→1.22", "downgrade"}, "", false},
		{"unknown target", []string{"plan", "--from", "1.21", "--to", "2.0"}, nil, "known releases: 1.21, 1.22, 1.23", true},
		{"missing --to", []string{"plan", "--from", "1.21"}, nil, "--to is required", true},
		{"bad Kubernetes version", []string{"plan", "--from", "1.21", "--to", "1.23", "--kubernetes-version", "banana"}, nil, "banana", true},
		{"json", []string{"plan", "--from", "1.21", "--to", "1.22", "-o", "json"}, []string{`"from": "1.21"`, `"to": "1.22"`, `"kubernetes": ">=1.34, <=1.35"`}, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, _, err := run(t, tt.args...)
			if tt.wantErr == "" && err != nil {
				t.Fatalf("unexpected error %v\n%s", err, out)
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				var ue *usageError
				if errors.As(err, &ue) != tt.usage {
					t.Errorf("usage error = %v, want %v", !tt.usage, tt.usage)
				}
				if code := exitCode(context.Background(), err); code == exitOK {
					t.Errorf("exit code %d for an error", code)
				}
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

func TestCatalogFlag(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("apiVersion: tmbox.dev/v1alpha1\nkind: Catalog\nreleases:\n- name: \"1.21\"\n  flavour: x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err := run(t, "--catalog", bad, "versions")
	if err == nil || !strings.Contains(err.Error(), "line 5") || !strings.Contains(err.Error(), "flavour") {
		t.Errorf("want the unknown key refused with its line, got %v", err)
	}
	if _, _, err := run(t, "--catalog", filepath.Join(dir, "missing.yaml"), "versions"); err == nil {
		t.Error("a missing catalog file was accepted")
	}
}

// TestRouteKlog: client-go's klog lines (routed to stderr by Istio's init)
// are dropped unless -v, which puts them in the debug log.
func TestRouteKlog(t *testing.T) {
	t.Cleanup(func() { klog.SetLogger(logr.Discard()) })
	tests := []struct {
		name string
		args []string
		want bool
	}{
		{"quiet", []string{"version"}, false},
		{"verbose", []string{"version", "-v"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			root := newRootCmd(&out, &errOut)
			routeKlog(root, &errOut)
			root.SetArgs(tt.args)
			if err := root.Execute(); err != nil {
				t.Fatal(err)
			}
			klog.ErrorS(errors.New("context canceled"), "Unexpected error when reading response body")
			got := strings.Contains(errOut.String(), "Unexpected error when reading response body")
			if got != tt.want {
				t.Errorf("klog line on stderr: %v, want %v; stderr:\n%s", got, tt.want, errOut.String())
			}
			if strings.Contains(out.String(), "Unexpected error") {
				t.Errorf("klog line on stdout:\n%s", out.String())
			}
		})
	}
}

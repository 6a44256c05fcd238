package main

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tmbox/tmbox/internal/testcluster"
	"github.com/tmbox/tmbox/preflight"
)

var suite = testcluster.NewSuite(testcluster.Options{})

// TestMain runs the tests; with TMBOX_CORPUS_MAIN=1 the test binary is
// tmbox itself (main exits the process), which is how TestCorpus runs
// tmbox as a separate process (corpus_test.go).
func TestMain(m *testing.M) {
	if os.Getenv("TMBOX_CORPUS_MAIN") == "1" {
		main()
	}
	os.Exit(suite.Main(m))
}

// noEngineHost makes this process look like a host without a container
// engine and without a kubeconfig: an empty PATH, an empty HOME.
func noEngineHost(t *testing.T) string {
	t.Helper()
	home := t.TempDir()
	t.Setenv("PATH", t.TempDir())
	t.Setenv("HOME", home)
	t.Setenv("KUBECONFIG", "")
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	t.Setenv("XDG_STATE_HOME", filepath.Join(home, "state"))
	t.Setenv("KIND_EXPERIMENTAL_PROVIDER", "")
	return home
}

func upstreamDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "..", "..", "shared", "upstream"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("the upstream manifests are needed at %s: %v", dir, err)
	}
	return dir
}

// TestPreflightWithoutEngine: with no kubeconfig, preflight checks the host
// for a kind cluster; without a container engine that fails, with a
// remediation, and exits with the preflight code.
func TestPreflightWithoutEngine(t *testing.T) {
	noEngineHost(t)
	start := time.Now()
	out, _, err := run(t, "preflight", "-o", "json")
	took := time.Since(start)
	t.Logf("tmbox preflight -o json took %s", took.Round(time.Millisecond))
	if code := exitCode(context.Background(), err); code != exitPreflight {
		t.Fatalf("exit code %d (err %v), want %d", code, err, exitPreflight)
	}
	var doc preflightOutput
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("stdout is not the JSON report: %v\n%s", err, out)
	}
	if doc.Passed || !strings.HasPrefix(doc.Target, "kind cluster tmbox") {
		t.Errorf("passed=%v target=%q", doc.Passed, doc.Target)
	}
	found := false
	for _, r := range doc.Results {
		if r.Name == preflight.CheckContainerEngine {
			found = true
			if r.Status != preflight.StatusFail || !strings.Contains(r.Remediation, "https://docs.docker.com/engine/install/") {
				t.Errorf("container-engine: %+v", r)
			}
		}
		if r.Category != preflight.CategoryHost {
			t.Errorf("%s: category %s; a kind target that does not exist has only host checks", r.Name, r.Category)
		}
	}
	if !found {
		t.Error("no container-engine result")
	}
}

// TestInstallCreateClusterFailsInPreflight: install --create-cluster on a
// host without an engine stops in preflight with the engine remediation,
// before kind is asked for anything.
func TestInstallCreateClusterFailsInPreflight(t *testing.T) {
	home := noEngineHost(t)
	state := filepath.Join(home, "tmbox-state")
	_, errOut, err := run(t, "install", "--create-cluster", "--yes", "--mirror", upstreamDir(t), "--state-dir", state)
	var pf *preflight.FailedError
	if !errors.As(err, &pf) {
		t.Fatalf("error %v, want a preflight failure", err)
	}
	if !strings.Contains(err.Error(), "container-engine: no container engine for kind: none of docker, nerdctl, podman is on PATH") || !strings.Contains(err.Error(), "docs.docker.com") {
		t.Errorf("error lacks the engine remediation: %v", err)
	}
	if strings.Contains(errOut, "[cluster]") || strings.Contains(errOut, "goroutine ") {
		t.Errorf("got past preflight:\n%s", errOut)
	}
	if _, err := os.Stat(state); !os.IsNotExist(err) {
		t.Errorf("state dir %s was created: %v", state, err)
	}
}

// TestIntegrationPreflightCluster: against the test cluster, release 1.23's
// cluster checks pass.
func TestIntegrationPreflightCluster(t *testing.T) {
	c := suite.Cluster(t)
	out, errOut, err := run(t, "preflight", "--kubeconfig", c.Kubeconfig, "--release", "1.23", "--mirror", upstreamDir(t), "-o", "json")
	if err != nil {
		t.Fatalf("%v\n%s\n%s", err, out, errOut)
	}
	var doc preflightOutput
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	clusterChecks := 0
	for _, r := range doc.Results {
		t.Logf("%-20s %-4s %s", r.Name, r.Status, r.Message)
		if r.Category == preflight.CategoryCluster {
			clusterChecks++
			if r.Status != preflight.StatusPass && r.Status != preflight.StatusWarn {
				t.Errorf("%s: %s", r.Name, r.Status)
			}
		}
	}
	if want := len(preflight.ClusterChecks(preflight.ClusterTarget{})); !doc.Passed || doc.Target != "existing cluster" || clusterChecks != want {
		t.Errorf("passed=%v target=%q cluster checks=%d", doc.Passed, doc.Target, clusterChecks)
	}
}

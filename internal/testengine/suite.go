package testengine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// shared is the engine of this test binary, started by the first Shared.
var shared struct {
	mu      sync.Mutex
	main    bool // Main (or Run) is running the tests
	started bool
	engine  *Engine
	err     error
}

// Shared returns this test binary's engine, starting it on first use; every
// test of the binary gets the same one. Starting also sets DOCKER_HOST in
// this process's environment to the engine (kind's library and the docker
// CLI read it), for every test of the binary: do not t.Setenv it elsewhere.
//
// Under -short the test is skipped. When the machine lacks the engine
// (ErrUnavailable: no dockerd…) the test fails if $CI or
// $TMBOX_REQUIRE_ENGINE is set (CI must run these tests), and is skipped
// otherwise with what to install. Any other start failure fails the test.
//
// The binary's TestMain must call Main (or Run), which stops the engine
// after the tests and fails the binary when anything of it is left.
func Shared(t testing.TB) *Engine {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: needs the container engine (skipped with -short)")
	}
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if !shared.main {
		t.Fatal("testengine.Shared needs the package's TestMain to call testengine.Main(m) (or testengine.Run), which stops the engine after the tests")
	}
	if !shared.started {
		shared.started = true
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		shared.engine, shared.err = Start(ctx, Options{Logf: func(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) }})
		if shared.err == nil {
			os.Setenv("DOCKER_HOST", shared.engine.Host)
			os.Unsetenv("DOCKER_CONTEXT")
		}
	}
	if err := shared.err; err != nil {
		if errors.Is(err, ErrUnavailable) && !Required() {
			t.Skipf("no container engine on this machine (%v); set CI=true or TMBOX_REQUIRE_ENGINE=1 to make this a failure", err)
		}
		t.Fatalf("start the container engine: %v", err)
	}
	return shared.engine
}

// Required reports whether a missing engine is a failure rather than a
// reason to skip: $CI or $TMBOX_REQUIRE_ENGINE is set to something other
// than "", "0" or "false".
func Required() bool {
	for _, v := range []string{"CI", "TMBOX_REQUIRE_ENGINE"} {
		switch strings.ToLower(os.Getenv(v)) {
		case "", "0", "false":
		default:
			return true
		}
	}
	return false
}

// Main runs the tests, then stops the shared engine if one was started and
// verifies that its socket, processes and mounts are gone; a failure there
// fails the binary. It returns the exit code for os.Exit:
//
//	func TestMain(m *testing.M) { os.Exit(testengine.Main(m)) }
func Main(m *testing.M) int { return Run(m.Run) }

// Run is Main for a TestMain that runs its tests through something else,
// e.g. the test cluster's suite:
//
//	func TestMain(m *testing.M) {
//		os.Exit(testengine.Run(func() int { return suite.Main(m) }))
//	}
func Run(run func() int) int {
	shared.mu.Lock()
	shared.main = true
	shared.mu.Unlock()
	code := run()
	if err := StopShared(code != 0); err != nil {
		fmt.Fprintf(os.Stderr, "container engine: %v\n", err)
		code = 1
	}
	return code
}

// StopShared stops the shared engine if it was started (Main and Run call
// it). keepLogs keeps its run directory and prints where.
func StopShared(keepLogs bool) error {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	e := shared.engine
	if e == nil {
		return nil
	}
	if keepLogs {
		e.KeepRunDir()
		fmt.Fprintf(os.Stderr, "tests failed: container engine logs kept in %s\n", e.RunDir)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	err := e.Stop(ctx)
	if err == nil && os.Getenv("DOCKER_HOST") == e.Host {
		os.Unsetenv("DOCKER_HOST")
	}
	return err
}

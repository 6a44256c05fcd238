package testcluster

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
)

// Suite shares one cluster between the tests of a package. The cluster is
// started by the first test that asks for it, so a package run with -short
// or a -run that selects no integration test starts nothing.
//
//	var suite = testcluster.NewSuite(testcluster.Options{})
//	func TestMain(m *testing.M) { os.Exit(suite.Main(m)) }
//	func TestIntegrationX(t *testing.T) { c := suite.Cluster(t); … }
type Suite struct {
	opts Options

	once    sync.Once
	cluster *Cluster
	err     error
}

// NewSuite returns a Suite whose cluster is started with opts.
func NewSuite(opts Options) *Suite { return &Suite{opts: opts} }

// Cluster returns the shared cluster, starting it on first use. It skips
// the test under -short and fails it when the cluster cannot start.
func (s *Suite) Cluster(t testing.TB) *Cluster {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: needs the test cluster (skipped with -short)")
	}
	s.once.Do(func() { s.cluster, s.err = Start(context.Background(), s.opts) })
	if s.err != nil {
		t.Fatalf("start test cluster: %v", s.err)
	}
	return s.cluster
}

// Main runs the tests, then stops the cluster if one was started and checks
// that none of its processes is left. It returns the exit code for os.Exit.
func (s *Suite) Main(m *testing.M) int {
	code := m.Run()
	if s.cluster != nil {
		if code != 0 {
			s.cluster.opts.KeepDir = true
			fmt.Fprintf(os.Stderr, "tests failed: test cluster logs kept in %s\n", s.cluster.Dir)
		}
		if err := s.cluster.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "stop test cluster: %v\n", err)
			code = 1
		}
	}
	return code
}

// StartT starts a cluster of the test's own and stops it when the test
// ends, failing the test if a process is left running.
func StartT(t testing.TB, opts Options) *Cluster {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: needs the test cluster (skipped with -short)")
	}
	c, err := Start(context.Background(), opts)
	if err != nil {
		t.Fatalf("start test cluster: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			c.opts.KeepDir = true
			t.Logf("test cluster logs kept in %s", c.Dir)
		}
		if err := c.Stop(); err != nil {
			t.Errorf("stop test cluster: %v", err)
		}
	})
	return c
}

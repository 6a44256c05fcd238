package testcluster

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// BinEnv names the environment variable that points at the directory of
// prebuilt test-cluster binaries (the Makefile sets it).
const BinEnv = "TMBOX_TESTCLUSTER_BIN"

// requiredBinaries are the programs a test cluster runs (kubectl is for
// tests and benchmarks that compare with it).
var requiredBinaries = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "kubectl"}

// findBinaries returns a directory holding every required binary: dir if
// set, else $TMBOX_TESTCLUSTER_BIN, else whatever hack/build-testcluster.sh
// builds or finds in its cache.
func findBinaries(dir string) (string, error) {
	if dir == "" {
		dir = os.Getenv(BinEnv)
	}
	if dir == "" {
		var err error
		if dir, err = runBuildScript(); err != nil {
			return "", err
		}
	}
	var missing []string
	for _, b := range requiredBinaries {
		if fi, err := os.Stat(filepath.Join(dir, b)); err != nil || fi.Mode()&0o111 == 0 {
			missing = append(missing, b)
		}
	}
	if len(missing) > 0 {
		return "", fmt.Errorf("test cluster binaries missing in %s: %s (build them with hack/build-testcluster.sh)", dir, strings.Join(missing, ", "))
	}
	return dir, nil
}

// runBuildScript runs hack/build-testcluster.sh from this source tree.
func runBuildScript() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", fmt.Errorf("cannot locate hack/build-testcluster.sh; set %s", BinEnv)
	}
	script := filepath.Join(filepath.Dir(file), "..", "..", "hack", "build-testcluster.sh")
	var stderr bytes.Buffer
	cmd := exec.Command("bash", script)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("build test cluster binaries (%s): %v\n%s\nset %s to a directory of prebuilt binaries, or run `make test`", script, err, stderr.String(), BinEnv)
	}
	return strings.TrimSpace(string(out)), nil
}

// kwokStages concatenates the kwok Stage files next to the binaries into one
// --config document stream.
func kwokStages(binDir string) ([]byte, error) {
	files, err := filepath.Glob(filepath.Join(binDir, "stages", "*.yaml"))
	if err != nil || len(files) == 0 {
		return nil, fmt.Errorf("no kwok stages in %s/stages (rebuild with hack/build-testcluster.sh)", binDir)
	}
	var buf bytes.Buffer
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		buf.WriteString("---\n")
		buf.Write(data)
		buf.WriteString("\n")
	}
	return buf.Bytes(), nil
}

package testengine

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
)

// WrapperPackage is the runtime wrapper's package path inside the module.
const WrapperPackage = "./hack/engine/runtime-wrapper"

const modulePath = "github.com/tmbox/tmbox"

// ModuleRoot returns the root of the tmbox checkout that holds the working
// directory (test binaries run in their package's directory).
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.HasPrefix(bytes.TrimSpace(data), []byte("module "+modulePath+"\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("not inside the %s checkout (no go.mod of that module above the working directory)", modulePath)
		}
		dir = parent
	}
}

// BuildWrapper builds the runtime wrapper (hack/engine/runtime-wrapper) as a
// static binary at out. It runs `go build` in the module root found by
// ModuleRoot, offline (GOPROXY=off, GOTOOLCHAIN=local: the wrapper needs
// nothing but the standard library). The binary is written beside out and
// renamed into place, so a running copy is never overwritten.
//
// The same binary serves dockerd (mode docker) and, installed as a kind
// node's runc, the node (mode node): see hack/engine/README.md.
func BuildWrapper(ctx context.Context, out string) error {
	root, err := ModuleRoot()
	if err != nil {
		return err
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("%w: go not found on PATH to build the runtime wrapper (or set TMBOX_ENGINE_WRAPPER to a built one)", ErrUnavailable)
	}
	out, err = filepath.Abs(out)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), ".build-"+filepath.Base(out)+"-")
	if err != nil {
		return err
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	cmd := exec.CommandContext(ctx, goBin, "build", "-trimpath", "-ldflags=-s -w", "-o", tmp.Name(), WrapperPackage)
	cmd.Dir = root
	cmd.Env = append(filterEnv(os.Environ(), "CGO_ENABLED", "GOFLAGS", "GOPROXY", "GOTOOLCHAIN", "GOOS", "GOARCH"),
		"CGO_ENABLED=0", "GOFLAGS=-mod=readonly", "GOPROXY=off", "GOTOOLCHAIN=local")
	if outp, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build the runtime wrapper (go build %s): %v\n%s", WrapperPackage, err, outp)
	}
	if err := os.Chmod(tmp.Name(), 0o755); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), out)
}

func isExec(p string) bool {
	info, err := os.Stat(p)
	return err == nil && info.Mode().IsRegular() && info.Mode().Perm()&0o111 != 0
}

// wrapperPath returns the wrapper to register in dockerd: the given one,
// $TMBOX_ENGINE_WRAPPER, or one built from the sources into the cache,
// named after a hash of its sources and the Go version.
func wrapperPath(ctx context.Context, given, cacheDir string, logf func(string, ...any)) (string, error) {
	if given == "" {
		given = os.Getenv("TMBOX_ENGINE_WRAPPER")
	}
	if given != "" {
		if !isExec(given) {
			return "", fmt.Errorf("runtime wrapper %s is not an executable file", given)
		}
		return filepath.Abs(given)
	}
	root, err := ModuleRoot()
	if err != nil {
		return "", fmt.Errorf("find the runtime wrapper's sources: %w (or set TMBOX_ENGINE_WRAPPER)", err)
	}
	key, err := wrapperKey(filepath.Join(root, WrapperPackage))
	if err != nil {
		return "", err
	}
	out := filepath.Join(cacheDir, "bin", "tmbox-runtime-wrapper-"+key)
	if isExec(out) {
		return out, nil
	}
	logf("engine: building the runtime wrapper into %s", out)
	if err := BuildWrapper(ctx, out); err != nil {
		return "", err
	}
	return out, nil
}

// wrapperKey hashes the wrapper's non-test sources and the Go version.
func wrapperKey(dir string) (string, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return "", err
	}
	files = slices.DeleteFunc(files, func(f string) bool { return strings.HasSuffix(f, "_test.go") })
	if len(files) == 0 {
		return "", errors.New("no runtime wrapper sources in " + dir)
	}
	slices.Sort(files)
	h := sha256.New()
	fmt.Fprintln(h, runtime.Version())
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s %d\n", filepath.Base(f), len(data))
		h.Write(data)
	}
	return hex.EncodeToString(h.Sum(nil))[:12], nil
}

package testengine

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"sigs.k8s.io/kind/pkg/cluster"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

// startT starts an engine of the test's own; the test skips or fails like
// Shared when the machine has no engine.
func startT(t *testing.T) *Engine {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: needs the container engine (skipped with -short)")
	}
	e, err := Start(context.Background(), Options{Logf: t.Logf})
	if errors.Is(err, ErrUnavailable) && !Required() {
		t.Skipf("no container engine: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.Stop(context.Background()); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	return e
}

// docker runs the docker CLI against e and returns its trimmed output.
func docker(t *testing.T, e *Engine, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := e.Command(ctx, "docker", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// tinyImage builds testdata/tiny as a static binary and imports it into e
// as the only file of an image (nothing can be pulled here).
func tinyImage(t *testing.T, e *Engine) string {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "tiny")
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, "./testdata/tiny")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOPROXY=off", "GOTOOLCHAIN=local", "GOFLAGS=-mod=readonly")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build tiny: %v\n%s", err, out)
	}
	tarPath := filepath.Join(dir, "tiny.tar")
	f, err := os.Create(tarPath)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(f)
	tw.WriteHeader(&tar.Header{Name: "tiny", Mode: 0o755, Size: int64(len(data)), Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0)})
	tw.Write(data)
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	const image = "tmbox-test/tiny:latest"
	docker(t, e, "import", "--change", `ENTRYPOINT ["/tiny"]`, tarPath, image)
	return image
}

func httpGet(url string, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	c := &http.Client{Timeout: 2 * time.Second}
	for {
		resp, err := c.Get(url)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			return string(body), nil
		}
		if time.Now().After(deadline) {
			return "", err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// capBits parses a "CapEff:\t…" line out of tiny caps' output.
func capBits(t *testing.T, out, field string) uint64 {
	t.Helper()
	for _, l := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no %s in %q", field, out)
	return 0
}

const (
	capNetAdmin    = 12
	capSysAdmin    = 21
	capSysResource = 24
)

// TestEngine runs the engine in this test binary's namespace and checks
// what kind needs of it: privileged containers, exec into them, a
// user-defined bridge network with name resolution, a port published on
// 127.0.0.1 — then that Stop leaves nothing behind.
func TestEngine(t *testing.T) {
	begin := time.Now()
	if testing.Short() {
		t.Skip("integration test: needs the container engine (skipped with -short)")
	}
	ctx := context.Background()
	e, err := Start(ctx, Options{Logf: t.Logf})
	if errors.Is(err, ErrUnavailable) && !Required() {
		t.Skipf("no container engine: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			e.Stop(ctx)
		}
	})
	t.Logf("engine %s started in %s: storage %s, data root %s", e.ServerVersion, e.Started.Round(time.Millisecond), e.StorageDriver, e.DataRoot)
	if e.StorageDriver != "overlay2" {
		t.Errorf("storage driver %q, want overlay2", e.StorageDriver)
	}
	if ns, _ := currentNetNS(); e.NetNS != ns {
		t.Errorf("engine in %s, this test in %s", e.NetNS, ns)
	}
	if got := docker(t, e, "info", "--format", "{{.DefaultRuntime}} {{.CgroupDriver}}"); got != RuntimeName+" cgroupfs" {
		t.Errorf("docker info: %q", got)
	}
	image := tinyImage(t, e)

	t.Run("privileged run", func(t *testing.T) {
		out := docker(t, e, "run", "--rm", "--privileged", image, "caps")
		eff := capBits(t, out, "CapEff")
		for _, c := range []int{capNetAdmin, capSysAdmin} {
			if eff&(1<<c) == 0 {
				t.Errorf("privileged container lacks capability %d: %s", c, out)
			}
		}
		if eff&(1<<capSysResource) != 0 {
			t.Errorf("CAP_SYS_RESOURCE still asked for: %s", out)
		}
	})

	t.Run("exec into a privileged container", func(t *testing.T) {
		docker(t, e, "run", "-d", "--privileged", "--name", "priv", image, "sleep")
		out := docker(t, e, "exec", "priv", "/tiny", "caps")
		if capBits(t, out, "CapEff")&(1<<capSysAdmin) == 0 {
			t.Errorf("exec'd process is not privileged: %s", out)
		}
		log, _ := os.ReadFile(filepath.Join(e.RunDir, "wrapper.log"))
		if !strings.Contains(string(log), " create ") || !strings.Contains(string(log), " exec ") {
			t.Errorf("wrapper did not edit both the bundle (create) and the process (exec):\n%s", log)
		}
	})

	t.Run("user-defined bridge network and published port", func(t *testing.T) {
		docker(t, e, "network", "create", "--driver", "bridge", "--subnet", "10.213.7.0/24", "tmbox-test-net")
		port := freePort(t)
		docker(t, e, "run", "-d", "--name", "web", "--hostname", "web", "--network", "tmbox-test-net", "-p", fmt.Sprintf("127.0.0.1:%d:80", port), image, "serve", ":80")
		// by name, through docker's embedded DNS, as kind's nodes find the
		// control plane
		if out := docker(t, e, "run", "--rm", "--network", "tmbox-test-net", image, "get", "http://web/"); out != "tiny web" {
			t.Errorf("container to container by name: %q", out)
		}
		// the published port, from this namespace's loopback
		if out, err := httpGet(fmt.Sprintf("http://127.0.0.1:%d/", port), 15*time.Second); err != nil || out != "tiny web" {
			t.Errorf("published port 127.0.0.1:%d: %q, %v", port, out, err)
		}
		// the container's own address, from this namespace
		ip := docker(t, e, "inspect", "-f", `{{(index .NetworkSettings.Networks "tmbox-test-net").IPAddress}}`, "web")
		if out, err := httpGet("http://"+ip+":80/", 15*time.Second); err != nil || out != "tiny web" {
			t.Errorf("container IP %s: %q, %v", ip, out, err)
		}
	})

	procs, err := e.Processes()
	if err != nil {
		t.Fatal(err)
	}
	var comms []string
	for _, p := range procs {
		comms = append(comms, p.Comm)
	}
	for _, want := range []string{"dockerd", "containerd", "containerd-shim", "docker-proxy", "tiny"} {
		if !containsStr(comms, want) {
			t.Errorf("Processes() lacks %s: %v", want, procs)
		}
	}

	stopBegin := time.Now()
	if err := e.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	stopped = true
	t.Logf("stopped in %s (test so far %s)", time.Since(stopBegin).Round(time.Millisecond), time.Since(begin).Round(time.Millisecond))
	// Independently of Stop's own verification:
	if _, err := os.Lstat(e.Socket); !os.IsNotExist(err) {
		t.Errorf("socket %s still there (%v)", e.Socket, err)
	}
	for _, p := range procs {
		if err := syscall.Kill(p.Pid, 0); err == nil {
			if st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.Pid)); procState(st) != 'Z' {
				t.Errorf("still alive after Stop: %s", p)
			}
		}
	}
	if left, err := e.Processes(); err != nil || len(left) > 0 {
		t.Errorf("processes after Stop: %v %v", left, err)
	}
	if _, err := os.Stat(e.RunDir); !os.IsNotExist(err) {
		t.Errorf("run dir %s not removed", e.RunDir)
	}
	for _, d := range e.scope().cgroupDirs() {
		t.Errorf("cgroup %s not removed", d)
	}
}

func containsStr(s []string, x string) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}

// TestEngineCrashRecovery: an engine whose test binary died (dockerd
// killed, the slot's lock dropped, no Stop) leaves shims, containers and
// mounts; the next Start in that slot removes them, starts, and keeps the
// images.
func TestEngineCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: needs the container engine (skipped with -short)")
	}
	ctx := context.Background()
	e1, err := Start(ctx, Options{Logf: t.Logf})
	if errors.Is(err, ErrUnavailable) && !Required() {
		t.Skipf("no container engine: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	image := tinyImage(t, e1)
	docker(t, e1, "network", "create", "leftover-net")
	docker(t, e1, "run", "-d", "--privileged", "--restart", "on-failure:1", "--network", "leftover-net", "--name", "leftover", image, "sleep")
	// what Pdeathsig does when the test binary dies
	e1.cmd.Process.Kill()
	<-e1.exited
	e1.lock.Close()
	time.Sleep(500 * time.Millisecond) // containerd follows dockerd
	left, err := e1.Processes()
	if err != nil {
		t.Fatal(err)
	}
	var leftComms []string
	for _, p := range left {
		leftComms = append(leftComms, p.Comm)
	}
	if !containsStr(leftComms, "containerd-shim") || !containsStr(leftComms, "tiny") {
		t.Fatalf("expected the dead engine to leave a shim and its container, found %v", left)
	}
	if mounts, _ := e1.scope().mounts(); len(mounts) == 0 {
		t.Errorf("expected the dead engine to leave mounts")
	}

	e2 := startT(t)
	if e2.Slot != e1.Slot || e2.DataRoot != e1.DataRoot {
		t.Fatalf("second engine took slot %d (%s), want the dead one's %d", e2.Slot, e2.DataRoot, e1.Slot)
	}
	for _, p := range left {
		if syscall.Kill(p.Pid, 0) == nil {
			if st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.Pid)); procState(st) != 'Z' {
				t.Errorf("left by the dead engine and still alive: %s", p)
			}
		}
	}
	if mounts, _ := (scope{paths: []string{e1.RunDir}}).mounts(); len(mounts) > 0 {
		t.Errorf("mounts of the dead engine's run dir left: %v", mounts)
	}
	if _, err := os.Stat(e1.RunDir); !os.IsNotExist(err) {
		t.Errorf("dead engine's run dir %s not removed", e1.RunDir)
	}
	if out := docker(t, e2, "ps", "-aq"); out != "" {
		t.Errorf("containers left from the dead engine: %s", out)
	}
	if out := docker(t, e2, "network", "ls", "--filter", "name=leftover-net", "-q"); out != "" {
		t.Errorf("network left from the dead engine: %s", out)
	}
	docker(t, e2, "image", "inspect", image) // images stay
	docker(t, e2, "run", "--rm", "--privileged", image, "caps")
}

// TestShared: the shared engine sets DOCKER_HOST, and kind's library
// (which runs the docker CLI) talks to it.
func TestShared(t *testing.T) {
	e := Shared(t)
	if got := os.Getenv("DOCKER_HOST"); got != e.Host {
		t.Fatalf("DOCKER_HOST = %q, want %q", got, e.Host)
	}
	if again := Shared(t); again != e {
		t.Fatal("Shared started a second engine")
	}
	p := cluster.NewProvider(cluster.ProviderWithDocker())
	clusters, err := p.List()
	if err != nil {
		t.Fatalf("kind's provider cannot list clusters on the engine: %v", err)
	}
	if len(clusters) != 0 {
		t.Errorf("kind clusters on a fresh engine: %v", clusters)
	}
	out, err := exec.Command("docker", "version", "--format", "{{.Server.Version}}").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "20.10") {
		t.Errorf("docker version through DOCKER_HOST: %q, %v", out, err)
	}
}

func TestForeignLinks(t *testing.T) {
	mk := func(name, typ, kind, master string) link {
		l := link{Name: name, LinkType: typ, Master: master}
		l.Info.Kind = kind
		return l
	}
	for _, tc := range []struct {
		name  string
		links []link
		bad   int
	}{
		{"loopback only", []link{mk("lo", "loopback", "", "")}, 0},
		{"docker's bridges and veths", []link{mk("lo", "loopback", "", ""), mk("docker0", "ether", "bridge", ""), mk("br-0123456789ab", "ether", "bridge", ""), mk("veth1a2b3c4", "ether", "veth", "br-0123456789ab")}, 0},
		{"host uplink", []link{mk("lo", "loopback", "", ""), mk("eth0", "ether", "", "")}, 1},
		{"a bridge docker did not make", []link{mk("lo", "loopback", "", ""), mk("virbr0", "ether", "bridge", "")}, 1},
		{"a veth on no docker bridge", []link{mk("lo", "loopback", "", ""), mk("veth0", "ether", "veth", "")}, 1},
		{"named like docker0 but not a bridge", []link{mk("lo", "loopback", "", ""), mk("docker0", "ether", "dummy", "")}, 1},
	} {
		bad, _ := foreignLinks(tc.links)
		if len(bad) != tc.bad {
			t.Errorf("%s: %v, want %d problems", tc.name, bad, tc.bad)
		}
	}
}

func TestInCgroup(t *testing.T) {
	cg := []byte("12:memory:/tmbox-engine-ab-0/c0ffee/system.slice\n0::/user.slice\n")
	if !inCgroup(cg, "/tmbox-engine-ab-0") {
		t.Error("not found under its parent")
	}
	if inCgroup(cg, "/tmbox-engine-ab") {
		t.Error("prefix of a name taken for a parent")
	}
	if inCgroup([]byte("0::/\n"), "/tmbox-engine-ab-0") {
		t.Error("root cgroup taken for the parent")
	}
}

func TestUnescapeMount(t *testing.T) {
	if got := unescapeMount(`/tmp/a\040b`); got != "/tmp/a b" {
		t.Errorf("got %q", got)
	}
}

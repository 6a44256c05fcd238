// Package testengine runs a real Docker engine (Debian's dockerd, with
// containerd and runc) for tests, inside the caller's loopback-only network
// namespace, never on the host network.
//
// A test binary run by `go test -exec hack/netns-exec` (make test) already
// sits in a network namespace of its own with only lo; Start checks that,
// starts dockerd there with its own data root under the cache directory, its
// own socket, exec root and pid file in a run directory, and the runtime
// wrapper from hack/engine/runtime-wrapper as the default runtime (this VM's
// capability bounding set lacks CAP_SYS_RESOURCE, so privileged containers —
// every kind node — need it). Stop ends dockerd, containerd and the shims,
// and verifies that the socket, the processes and the mounts are gone.
//
// Most tests share one engine per test binary:
//
//	func TestMain(m *testing.M) { os.Exit(testengine.Main(m)) }
//	func TestKindX(t *testing.T) {
//		e := testengine.Shared(t) // also sets DOCKER_HOST for this process
//		…
//	}
//
// kind's library and the docker CLI find the engine through DOCKER_HOST in
// the process environment; Shared sets it, and Engine.Env carries it for
// commands started with their own environment.
//
// This is test infrastructure for these machines: nothing in tmbox itself
// may depend on it.
package testengine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ErrUnavailable is wrapped by Start's error when this machine lacks what
// the engine needs (dockerd, containerd, runc, root).
var ErrUnavailable = errors.New("container engine unavailable")

// RuntimeName is the name the runtime wrapper is registered under in
// dockerd (--add-runtime RuntimeName=PATH --default-runtime RuntimeName).
const RuntimeName = "tmbox-wrapper"

// maxSlots bounds how many engines may run at once from one cache
// directory (one per concurrently running test binary). Each slot has its
// own data root.
const maxSlots = 8

// Options configure Start. The zero value is what tests want.
type Options struct {
	// CacheDir holds what outlives an engine: the data roots (data/SLOT,
	// images stay between runs), the slot locks and the built runtime
	// wrapper. Default: $TMBOX_ENGINE_CACHE, else
	// ${XDG_CACHE_HOME:-$HOME/.cache}/tmbox/engine.
	CacheDir string
	// RunDir holds the socket, the pid file, the exec root and the logs.
	// Default: a new directory under $TMPDIR, removed by a clean Stop. A
	// given directory is created if missing; it must not hold a live engine.
	RunDir string
	// Dockerd is the dockerd binary. Default: dockerd on PATH, /usr/sbin or
	// /usr/bin.
	Dockerd string
	// Wrapper is the runtime wrapper binary. Default: $TMBOX_ENGINE_WRAPPER,
	// else hack/engine/runtime-wrapper built into CacheDir/bin.
	Wrapper string
	// StorageDriver is dockerd's --storage-driver. Default: overlay2.
	StorageDriver string
	// KeepContainers leaves the containers, networks and volumes found in
	// the data root at start (an earlier run that crashed) in place. By
	// default they are removed; images always stay.
	KeepContainers bool
	// StartTimeout bounds the wait for dockerd's API. Default: 60 s.
	StartTimeout time.Duration
	// Logf receives progress messages. Default: none.
	Logf func(format string, args ...any)
}

// Pids are the PIDs of the engine's daemons.
type Pids struct {
	Dockerd    int `json:"dockerd"`    // dockerd, a child of the starting process
	Containerd int `json:"containerd"` // the containerd dockerd runs for itself
}

// Engine is a running dockerd. Its exported fields describe it; they are
// also written to RunDir/engine.json.
type Engine struct {
	// Host is the engine's address, "unix:///…/docker.sock".
	Host string `json:"host"`
	// Env is the environment a docker client needs: DOCKER_HOST=Host.
	Env []string `json:"env"`
	// Socket is the path of dockerd's socket.
	Socket string `json:"socket"`
	// RunDir holds the socket, exec root (exec/), pid file and the logs
	// (dockerd.log, wrapper.log: one line per spec the wrapper edited).
	RunDir string `json:"runDir"`
	// DataRoot is dockerd's --data-root.
	DataRoot string `json:"dataRoot"`
	// CgroupParent holds every container's cgroup.
	CgroupParent string `json:"cgroupParent"`
	// Slot is the engine's slot in the cache directory.
	Slot int `json:"slot"`
	// NetNS is the network namespace the engine runs in ("net:[…]").
	NetNS string `json:"netns"`
	// Pids are dockerd's and its containerd's.
	Pids Pids `json:"pids"`
	// StorageDriver is the storage driver the daemon reports (overlay2).
	StorageDriver string `json:"storageDriver"`
	// ServerVersion is the daemon's version (20.10.24+dfsg1 from Debian).
	ServerVersion string `json:"serverVersion"`
	// Started is how long Start took.
	Started time.Duration `json:"startedIn"`

	// OwnsRunDir: Start made RunDir, so a clean Stop removes it.
	OwnsRunDir bool `json:"ownsRunDir"`
	// CacheDir is Options.CacheDir resolved (data roots, slots, wrapper).
	CacheDir string `json:"cacheDir"`

	cmd      *exec.Cmd
	exited   chan struct{}
	waitErr  error
	lock     *os.File
	keep     bool
	logf     func(string, ...any)
	stopOnce sync.Once
	stopErr  error
}

// Start starts an engine in this process's network namespace, which must be
// loopback-only (plus docker's own bridges), and waits until its API
// answers. dockerd is a child of this process and is killed with it
// (Pdeathsig); what a killed engine leaves (shims, containers, mounts) is
// removed by the next Start that uses the same slot. Call Stop when done.
func Start(ctx context.Context, opts Options) (*Engine, error) {
	begin := time.Now()
	logf := opts.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if err := checkNetNS(); err != nil {
		return nil, err
	}
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("%w: dockerd must run as root (this process has uid %d)", ErrUnavailable, os.Geteuid())
	}
	path := enginePath()
	dockerd := opts.Dockerd
	if dockerd == "" {
		var err error
		if dockerd, err = lookPath("dockerd", path); err != nil {
			return nil, fmt.Errorf("%w: dockerd not found (install Debian's docker.io: apt-get install docker.io, as .ci/run does)", ErrUnavailable)
		}
	}
	for _, prog := range []string{"containerd", "containerd-shim-runc-v2", "runc", "iptables"} {
		if _, err := lookPath(prog, path); err != nil {
			return nil, fmt.Errorf("%w: %s not found (install Debian's docker.io, which brings containerd, runc and iptables)", ErrUnavailable, prog)
		}
	}
	runc, _ := lookPath("runc", path)
	cacheDir, err := cacheDir(opts.CacheDir)
	if err != nil {
		return nil, err
	}
	wrapper, err := wrapperPath(ctx, opts.Wrapper, cacheDir, logf)
	if err != nil {
		return nil, err
	}
	netns, err := currentNetNS()
	if err != nil {
		return nil, err
	}

	e := &Engine{CacheDir: cacheDir, NetNS: netns, logf: logf, exited: make(chan struct{})}
	if err := e.prepareRunDir(ctx, opts.RunDir); err != nil {
		return nil, err
	}
	if err := e.takeSlot(ctx); err != nil {
		e.cleanupRunDir()
		return nil, err
	}
	e.Socket = filepath.Join(e.RunDir, "docker.sock")
	e.Host = "unix://" + e.Socket
	e.Env = []string{"DOCKER_HOST=" + e.Host}
	// unix socket paths are limited to 108 bytes; containerd's is the
	// longest the engine makes.
	if n := len(filepath.Join(e.RunDir, "exec/containerd/containerd.sock.ttrpc")); n > 100 {
		e.releaseSlot()
		e.cleanupRunDir()
		return nil, fmt.Errorf("run directory %s is too long for unix sockets (%d bytes): choose a shorter RunDir or TMPDIR", e.RunDir, n)
	}
	if err := e.launch(dockerd, wrapper, runc, path, opts); err != nil {
		e.releaseSlot()
		return nil, err
	}
	timeout := opts.StartTimeout
	if timeout == 0 {
		timeout = 60 * time.Second
	}
	if err := e.waitReady(ctx, timeout); err != nil {
		e.abort()
		return nil, err
	}
	if !opts.KeepContainers {
		if err := e.removeLeftovers(ctx); err != nil {
			e.abort()
			return nil, err
		}
	}
	e.Started = time.Since(begin)
	if err := e.writeState(); err != nil {
		e.abort()
		return nil, err
	}
	logf("engine: dockerd %s (pid %d, %s, data root %s) answers on %s in %.1fs", e.ServerVersion, e.Pids.Dockerd, e.StorageDriver, e.DataRoot, e.Host, e.Started.Seconds())
	return e, nil
}

// enginePath is PATH with the system directories dockerd's programs live in.
func enginePath() string {
	path := os.Getenv("PATH")
	for _, d := range []string{"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"} {
		if !strings.Contains(":"+path+":", ":"+d+":") {
			path += ":" + d
		}
	}
	return strings.TrimPrefix(path, ":")
}

func lookPath(prog, path string) (string, error) {
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			continue
		}
		p := filepath.Join(dir, prog)
		if info, err := os.Stat(p); err == nil && info.Mode().IsRegular() && info.Mode().Perm()&0o111 != 0 {
			return p, nil
		}
	}
	return "", exec.ErrNotFound
}

func cacheDir(dir string) (string, error) {
	if dir == "" {
		dir = os.Getenv("TMBOX_ENGINE_CACHE")
	}
	if dir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			return "", fmt.Errorf("find the cache directory: %w", err)
		}
		dir = filepath.Join(base, "tmbox", "engine")
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	return dir, os.MkdirAll(dir, 0o755)
}

// prepareRunDir makes the run directory. A given one that holds the state of
// an earlier engine is cleared if that engine is gone (its slot is free).
func (e *Engine) prepareRunDir(ctx context.Context, dir string) error {
	if dir == "" {
		d, err := os.MkdirTemp("", "tmbox-engine-")
		if err != nil {
			return err
		}
		e.RunDir, e.OwnsRunDir = d, true
		return nil
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	e.RunDir = dir
	if old, err := Attach(dir); err == nil {
		lock, err := lockSlot(old.CacheDir, old.Slot)
		if err != nil {
			return fmt.Errorf("run directory %s belongs to a running engine (%s, slot %d): %w", dir, old.Host, old.Slot, err)
		}
		// the old engine is dead: sweep it, then start afresh here
		e.sweepOld(ctx, old.deadScope(), fmt.Sprintf("run directory %s", dir))
		lock.Close()
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("clear the run directory of a dead engine: %w", err)
		}
	}
	if _, err := os.Stat(dir); os.IsNotExist(err) {
		e.OwnsRunDir = true
	}
	return os.MkdirAll(dir, 0o755)
}

func (e *Engine) cleanupRunDir() {
	if e.OwnsRunDir && !e.keep {
		os.RemoveAll(e.RunDir)
	}
}

// lockSlot takes a slot's lock without waiting. The lock is held for the
// engine's life by this process (the file is close-on-exec, so dockerd and
// its children do not inherit it); when this process dies the kernel drops
// it, and the next Start knows whatever is left in the slot is dead.
func lockSlot(cacheDir string, slot int) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(cacheDir, fmt.Sprintf("slot-%d.lock", slot)), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("slot %d is in use: %w", slot, err)
	}
	return f, nil
}

// takeSlot picks the first free slot, removes what a dead engine left in it
// and records this engine as its user.
func (e *Engine) takeSlot(ctx context.Context) error {
	for slot := 0; slot < maxSlots; slot++ {
		lock, err := lockSlot(e.CacheDir, slot)
		if err != nil {
			continue
		}
		e.lock, e.Slot = lock, slot
		e.DataRoot = filepath.Join(e.CacheDir, "data", strconv.Itoa(slot))
		sum := sha256.Sum256([]byte(e.CacheDir))
		e.CgroupParent = fmt.Sprintf("/tmbox-engine-%s-%d", hex.EncodeToString(sum[:])[:8], slot)
		// What a dead engine of this slot may have left: its processes name
		// the data root or its run dir, its containers sit in the cgroup.
		old := scope{paths: []string{e.DataRoot}, cgroupParent: e.CgroupParent}
		var prev Engine
		if data, err := os.ReadFile(e.slotFile()); err == nil && json.Unmarshal(data, &prev) == nil && prev.RunDir != "" {
			old.paths = append(old.paths, prev.RunDir)
			defer func() {
				if prev.OwnsRunDir && prev.RunDir != e.RunDir {
					os.RemoveAll(prev.RunDir)
				}
			}()
		}
		e.sweepOld(ctx, old, fmt.Sprintf("slot %d", slot))
		if err := os.MkdirAll(e.DataRoot, 0o710); err != nil {
			e.releaseSlot()
			return err
		}
		return e.writeFile(e.slotFile())
	}
	return fmt.Errorf("all %d engine slots in %s are in use", maxSlots, e.CacheDir)
}

func (e *Engine) sweepOld(ctx context.Context, s scope, what string) {
	found, mounts, err := s.sweep(ctx)
	if len(found) > 0 || len(mounts) > 0 {
		e.logf("engine: removed what a dead engine left in %s: %d processes %v, %d mounts", what, len(found), found, len(mounts))
	}
	if err != nil {
		e.logf("engine: clearing %s: %v", what, err)
	}
}

func (e *Engine) slotFile() string {
	return filepath.Join(e.CacheDir, fmt.Sprintf("slot-%d.json", e.Slot))
}

func (e *Engine) releaseSlot() {
	if e.lock != nil {
		os.Remove(e.slotFile())
		e.lock.Close()
		e.lock = nil
	}
}

func (e *Engine) writeState() error {
	if err := e.writeFile(e.slotFile()); err != nil {
		return err
	}
	return e.writeFile(filepath.Join(e.RunDir, "engine.json"))
}

func (e *Engine) writeFile(path string) error {
	data, err := json.MarshalIndent(e, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// launch starts dockerd.
func (e *Engine) launch(dockerd, wrapper, runc, path string, opts Options) error {
	driver := opts.StorageDriver
	if driver == "" {
		driver = "overlay2"
	}
	config := filepath.Join(e.RunDir, "daemon.json")
	// An empty config of its own, so /etc/docker/daemon.json is never read.
	if err := os.WriteFile(config, []byte("{}\n"), 0o644); err != nil {
		return err
	}
	log, err := os.OpenFile(filepath.Join(e.RunDir, "dockerd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer log.Close()
	args := []string{
		"--config-file", config,
		"--data-root", e.DataRoot,
		"--exec-root", filepath.Join(e.RunDir, "exec"),
		"--pidfile", filepath.Join(e.RunDir, "dockerd.pid"),
		"--host", e.Host,
		"--storage-driver", driver,
		"--add-runtime", RuntimeName + "=" + wrapper,
		"--default-runtime", RuntimeName,
		"--cgroup-parent", e.CgroupParent,
		"--iptables=true",
		"--live-restore=false",
	}
	cmd := exec.Command(dockerd, args...)
	cmd.Env = append(filterEnv(os.Environ(), "PATH", "DOCKER_HOST", "TMBOX_WRAPPED_RUNTIME", "TMBOX_WRAPPER_MODE", "TMBOX_WRAPPER_LOG"),
		"PATH="+path,
		"TMBOX_WRAPPED_RUNTIME="+runc,
		"TMBOX_WRAPPER_MODE=docker",
		"TMBOX_WRAPPER_LOG="+filepath.Join(e.RunDir, "wrapper.log"),
	)
	cmd.Dir = e.RunDir
	cmd.Stdout, cmd.Stderr = log, log
	// Its own process group (a ^C to the test is not a ^C to dockerd: Stop
	// ends it in order), and killed if this process dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start dockerd: %w", err)
	}
	e.cmd = cmd
	e.Pids.Dockerd = cmd.Process.Pid
	go func() {
		e.waitErr = cmd.Wait()
		close(e.exited)
	}()
	return nil
}

func filterEnv(env []string, drop ...string) []string {
	var out []string
next:
	for _, kv := range env {
		for _, d := range drop {
			if strings.HasPrefix(kv, d+"=") {
				continue next
			}
		}
		out = append(out, kv)
	}
	return out
}

// client returns an HTTP client for the engine's API.
func (e *Engine) client(timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", e.Socket)
		}},
	}
}

// api calls the engine's HTTP API and decodes a JSON answer into out.
func (e *Engine) api(ctx context.Context, method, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, "http://docker"+path, nil)
	if err != nil {
		return err
	}
	resp, err := e.client(2 * time.Minute).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(body)))
	}
	if out != nil {
		return json.Unmarshal(body, out)
	}
	return nil
}

// waitReady polls /info (what `docker info` asks) until it answers.
func (e *Engine) waitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		var info struct {
			Driver, ServerVersion, DefaultRuntime string
		}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		last = e.api(cctx, http.MethodGet, "/info", &info)
		cancel()
		if last == nil {
			e.StorageDriver, e.ServerVersion = info.Driver, info.ServerVersion
			if info.DefaultRuntime != RuntimeName {
				return e.startErr(fmt.Errorf("default runtime is %q, want %q", info.DefaultRuntime, RuntimeName))
			}
			if pid, err := readPid(filepath.Join(e.RunDir, "exec", "containerd", "containerd.pid")); err == nil {
				e.Pids.Containerd = pid
			}
			return nil
		}
		select {
		case <-e.exited:
			return e.startErr(fmt.Errorf("dockerd exited: %v", e.waitErr))
		case <-ctx.Done():
			return e.startErr(ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return e.startErr(fmt.Errorf("dockerd did not answer within %s: %v", timeout, last))
		}
	}
}

// startErr adds the tail of dockerd's log to a start failure.
func (e *Engine) startErr(err error) error {
	e.keep = true
	log, _ := os.ReadFile(filepath.Join(e.RunDir, "dockerd.log"))
	lines := strings.Split(strings.TrimRight(string(log), "\n"), "\n")
	if len(lines) > 40 {
		lines = lines[len(lines)-40:]
	}
	return fmt.Errorf("start dockerd: %w\n--- %s (last %d lines) ---\n%s", err, filepath.Join(e.RunDir, "dockerd.log"), len(lines), strings.Join(lines, "\n"))
}

func readPid(file string) (int, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(data)))
}

// removeLeftovers removes the containers, networks and volumes a dead
// engine left in the data root: an engine starts empty but for images.
func (e *Engine) removeLeftovers(ctx context.Context) error {
	var cs []struct {
		ID    string
		Names []string
	}
	if err := e.api(ctx, http.MethodGet, "/containers/json?all=1", &cs); err != nil {
		return err
	}
	for _, c := range cs {
		if err := e.api(ctx, http.MethodDelete, "/containers/"+url.PathEscape(c.ID)+"?force=1&v=1", nil); err != nil {
			return fmt.Errorf("remove container %v left from an earlier run: %w", c.Names, err)
		}
	}
	if err := e.api(ctx, http.MethodPost, "/networks/prune", nil); err != nil {
		return err
	}
	if err := e.api(ctx, http.MethodPost, "/volumes/prune", nil); err != nil {
		return err
	}
	if len(cs) > 0 {
		e.logf("engine: removed %d containers left from an earlier run", len(cs))
	}
	return nil
}

// abort ends a half-started engine.
func (e *Engine) abort() {
	e.keep = true
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if e.cmd != nil {
		e.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-e.exited:
		case <-time.After(10 * time.Second):
			e.cmd.Process.Kill()
			<-e.exited
		}
	}
	e.scope().sweep(ctx)
	os.Remove(e.Socket)
	e.releaseSlot()
}

func (e *Engine) scope() scope {
	return scope{paths: []string{e.RunDir, e.DataRoot}, cgroupParent: e.CgroupParent, netns: e.NetNS}
}

// deadScope is scope for an engine whose process is gone: without the
// network namespace, whose inode a newer namespace may have taken.
func (e *Engine) deadScope() scope {
	s := e.scope()
	s.netns = ""
	return s
}

// Reap removes what an engine left when the process that started it died
// without Stop (see Attach): its processes, mounts and cgroups, its socket
// and its slot's record, then Verifies. It refuses while the engine's slot
// is held, that is while its starter, or a newer engine in the same slot,
// is alive.
func (e *Engine) Reap(ctx context.Context) error {
	lock, err := lockSlot(e.CacheDir, e.Slot)
	if err != nil {
		return fmt.Errorf("engine %s may still be in use: %w", e.Host, err)
	}
	defer lock.Close()
	found, mounts, err := e.deadScope().sweep(ctx)
	if err != nil {
		return err
	}
	if len(found) > 0 || len(mounts) > 0 {
		e.logf("engine: reaped %d processes and %d mounts of %s", len(found), len(mounts), e.Host)
	}
	os.Remove(e.Socket)
	var prev Engine
	if data, err := os.ReadFile(e.slotFile()); err == nil && json.Unmarshal(data, &prev) == nil && prev.RunDir == e.RunDir {
		os.Remove(e.slotFile())
	}
	if err := e.Verify(); err != nil {
		return err
	}
	if e.OwnsRunDir {
		os.RemoveAll(e.RunDir)
	}
	return nil
}

// Attach reads the description of the engine whose run directory is dir
// (RunDir/engine.json), for a process other than the one that started it:
// its Processes and Verify work; Stop does not (it is the starter's).
func Attach(dir string) (*Engine, error) {
	data, err := os.ReadFile(filepath.Join(dir, "engine.json"))
	if err != nil {
		return nil, err
	}
	var e Engine
	if err := json.Unmarshal(data, &e); err != nil {
		return nil, fmt.Errorf("%s/engine.json: %w", dir, err)
	}
	e.logf = func(string, ...any) {}
	return &e, nil
}

// Command returns a command that runs with this engine as its docker
// (DOCKER_HOST set), e.g. e.Command(ctx, "docker", "ps").
func (e *Engine) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(filterEnv(os.Environ(), "DOCKER_HOST", "DOCKER_CONTEXT"), e.Env...)
	return cmd
}

// Done is closed when dockerd exits (after Stop, or when it dies).
func (e *Engine) Done() <-chan struct{} {
	if e.exited == nil {
		c := make(chan struct{})
		close(c)
		return c
	}
	return e.exited
}

// KeepRunDir makes Stop keep the run directory (the logs) even when it
// stops cleanly.
func (e *Engine) KeepRunDir() { e.keep = true }

// Processes lists the engine's live processes: dockerd, containerd, the
// shims, docker-proxy, runc and everything in the containers' cgroups.
func (e *Engine) Processes() ([]Process, error) { return e.scope().processes() }

// Verify returns an error unless the engine is entirely gone: no socket, no
// process (Processes), nothing mounted under its run directory or data
// root.
func (e *Engine) Verify() error {
	var problems []string
	if _, err := os.Lstat(e.Socket); err == nil {
		problems = append(problems, "socket "+e.Socket+" still exists")
	}
	procs, err := e.Processes()
	if err != nil {
		return err
	}
	for _, p := range procs {
		problems = append(problems, p.String())
	}
	mounts, err := e.scope().mounts()
	if err != nil {
		return err
	}
	for _, m := range mounts {
		problems = append(problems, "still mounted: "+m)
	}
	if len(problems) > 0 {
		return fmt.Errorf("engine %s not gone: %s", e.Host, strings.Join(problems, "; "))
	}
	return nil
}

// Stop stops the engine: SIGTERM to dockerd, which stops the containers
// and its containerd; then it waits until every process of the engine is
// gone, removes the socket, and Verifies. Whatever is left is killed and
// unmounted, and reported as an error. The run directory is removed unless
// Stop fails or KeepRunDir was called. ctx bounds the wait (default 2 min);
// calling Stop again returns the first result.
func (e *Engine) Stop(ctx context.Context) error {
	if e.cmd == nil {
		return errors.New("engine was not started by this process (see Attach)")
	}
	e.stopOnce.Do(func() { e.stopErr = e.stop(ctx) })
	return e.stopErr
}

func (e *Engine) stop(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
	}
	begin := time.Now()
	var problems []string
	e.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-e.exited:
	case <-ctx.Done():
		problems = append(problems, fmt.Sprintf("dockerd (pid %d) did not stop on SIGTERM within %s; killed", e.Pids.Dockerd, time.Since(begin).Round(time.Second)))
		e.cmd.Process.Kill()
		<-e.exited
	}
	// containerd stops after dockerd; shims after their containers.
	wctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if left, err := e.scope().waitGone(wctx, 20*time.Second); err != nil {
		for _, p := range left {
			problems = append(problems, "left running: "+p.String())
		}
	}
	if _, err := os.Lstat(e.Socket); err == nil {
		os.Remove(e.Socket)
	}
	if err := e.Verify(); err != nil {
		problems = append(problems, err.Error())
	}
	// Clean up whatever is left either way, so a failed Stop does not
	// leave a machine in a worse state.
	if _, _, err := e.scope().sweep(wctx); err != nil {
		problems = append(problems, "cleanup: "+err.Error())
	}
	e.releaseSlot()
	if len(problems) > 0 {
		e.keep = true
		return fmt.Errorf("stop engine (logs in %s): %s", e.RunDir, strings.Join(problems, "; "))
	}
	e.logf("engine: stopped in %.1fs; socket, processes and mounts gone", time.Since(begin).Seconds())
	if !e.keep && e.OwnsRunDir {
		os.RemoveAll(e.RunDir)
	} else {
		os.Remove(filepath.Join(e.RunDir, "engine.json"))
	}
	return nil
}

// Command engine starts and stops a test container engine (dockerd) inside
// the current network namespace, for scripts and for hand use; tests use
// internal/testengine directly. hack/engine/dockerd.sh builds and runs it.
//
//	engine start [--run-dir DIR] [--owner PID]  start the engine of this network namespace (or find it
//	                                            running); prints `export DOCKER_HOST=…`
//	engine env   [--run-dir DIR]                print `export DOCKER_HOST=…` of the running engine
//	engine stop  [--run-dir DIR]                stop it; fails unless its socket, processes and mounts are gone
//	engine wrapper OUT                          build the runtime wrapper (hack/engine/runtime-wrapper) at OUT
//
// The default run directory is $TMPDIR/tmbox-engine-net<INODE>, named after
// the network namespace, so start, env and stop run in the same namespace
// agree on it. start leaves a supervisor process behind that owns dockerd:
// it stops the engine on `engine stop` (SIGTERM), or when the owner process
// exits (default $TMBOX_ENGINE_OWNER, else the parent of this command; 0:
// no owner), so an engine never outlives the script that wanted it.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tmbox/tmbox/internal/testengine"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "engine: %v\n", err)
		os.Exit(1)
	}
}

func usage() error {
	return errors.New("usage: engine start|env|stop [--run-dir DIR] [--owner PID] | engine wrapper OUT")
}

func run(args []string) error {
	if len(args) == 0 {
		return usage()
	}
	cmd := args[0]
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	runDir := fs.String("run-dir", "", "the engine's run directory (default: one per network namespace under $TMPDIR)")
	owner := fs.Int("owner", defaultOwner(), "stop the engine when this process exits (0: never)")
	ownerStart := fs.Uint64("owner-start", 0, "(serve) the owner's start time")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if cmd == "wrapper" {
		if fs.NArg() != 1 {
			return usage()
		}
		out, err := filepath.Abs(fs.Arg(0))
		if err != nil {
			return err
		}
		if err := chdirRoot(); err != nil {
			return err
		}
		return testengine.BuildWrapper(context.Background(), out)
	}
	if fs.NArg() != 0 {
		return usage()
	}
	dir, err := resolveRunDir(*runDir)
	if err != nil {
		return err
	}
	switch cmd {
	case "start":
		return start(dir, *owner)
	case "serve":
		if err := chdirRoot(); err != nil {
			return err
		}
		return serve(dir, *owner, *ownerStart)
	case "env":
		e, err := running(dir)
		if err != nil {
			return err
		}
		printEnv(e)
		return nil
	case "stop":
		return stop(dir)
	}
	return usage()
}

func defaultOwner() int {
	if v := os.Getenv("TMBOX_ENGINE_OWNER"); v != "" {
		if n, err := strconv.Atoi(v); err == nil {
			return n
		}
	}
	return os.Getppid()
}

// chdirRoot moves to the checkout ($TMBOX_ENGINE_ROOT, set by dockerd.sh),
// where the runtime wrapper's sources are.
func chdirRoot() error {
	if root := os.Getenv("TMBOX_ENGINE_ROOT"); root != "" {
		return os.Chdir(root)
	}
	return nil
}

func resolveRunDir(dir string) (string, error) {
	if dir != "" {
		return filepath.Abs(dir)
	}
	ns, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		return "", err
	}
	inode := strings.TrimSuffix(strings.TrimPrefix(ns, "net:["), "]")
	return filepath.Join(os.TempDir(), "tmbox-engine-net"+inode), nil
}

func printEnv(e *testengine.Engine) {
	fmt.Printf("export DOCKER_HOST=%s\n", e.Host)
}

// supervisor returns the PID of the live supervisor of dir's engine, or 0.
func supervisor(dir string) int {
	data, err := os.ReadFile(filepath.Join(dir, "supervisor.pid"))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 0 {
		return 0
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !strings.Contains(string(cmdline), "\x00serve\x00") {
		return 0
	}
	return pid
}

// running returns dir's engine if its supervisor is alive.
func running(dir string) (*testengine.Engine, error) {
	e, err := testengine.Attach(dir)
	if err != nil || supervisor(dir) == 0 {
		return nil, fmt.Errorf("no engine running with run directory %s (start one with hack/engine/dockerd.sh start, in the same network namespace)", dir)
	}
	return e, nil
}

func start(dir string, owner int) error {
	if e, err := running(dir); err == nil {
		fmt.Fprintf(os.Stderr, "engine: already running (%s)\n", e.Host)
		printEnv(e)
		return nil
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	var ownerStart uint64
	if owner > 0 {
		if ownerStart, err = startTime(owner); err != nil {
			return fmt.Errorf("owner process %d: %w", owner, err)
		}
	}
	logPath := dir + ".log"
	log, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	defer log.Close()
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	cmd := exec.Command(self, "serve", "--run-dir", dir, "--owner", strconv.Itoa(owner), "--owner-start", strconv.FormatUint(ownerStart, 10))
	cmd.Stdout, cmd.Stderr = log, log
	cmd.ExtraFiles = []*os.File{w} // fd 3: progress, then READY
	// Its own session: no terminal's signals; it outlives this command.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	w.Close()
	ready := false
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if sc.Text() == "READY" {
			ready = true
			break
		}
		fmt.Fprintln(os.Stderr, sc.Text())
	}
	r.Close()
	if !ready {
		cmd.Wait()
		return fmt.Errorf("the engine did not start (supervisor log: %s)", logPath)
	}
	cmd.Process.Release()
	e, err := testengine.Attach(dir)
	if err != nil {
		return err
	}
	printEnv(e)
	return nil
}

// serve is the supervisor: it starts the engine in-process, then stops it
// on SIGTERM/SIGINT/SIGHUP, when the owner exits, or when dockerd dies.
func serve(dir string, owner int, ownerStart uint64) error {
	progress := os.NewFile(3, "progress")
	logf := func(f string, a ...any) {
		line := fmt.Sprintf(f, a...)
		fmt.Println(time.Now().UTC().Format(time.RFC3339), line)
		if progress != nil {
			fmt.Fprintln(progress, line)
		}
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	e, err := testengine.Start(context.Background(), testengine.Options{RunDir: dir, Logf: logf})
	if err != nil {
		logf("%v", err)
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "supervisor.pid"), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		e.Stop(context.Background())
		return err
	}
	fmt.Fprintln(progress, "READY")
	progress.Close()
	progress = nil
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	why := ""
	for why == "" {
		select {
		case s := <-sigs:
			why = "signal " + s.String()
		case <-e.Done():
			why = "dockerd exited"
		case <-tick.C:
			if owner > 0 {
				if st, err := startTime(owner); err != nil || st != ownerStart {
					why = fmt.Sprintf("owner process %d exited", owner)
				}
			}
		}
	}
	logf("stopping the engine: %s", why)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := e.Stop(ctx); err != nil {
		logf("%v", err)
		return err
	}
	return nil
}

func stop(dir string) error {
	e, err := testengine.Attach(dir)
	if err != nil {
		return fmt.Errorf("no engine with run directory %s: %v", dir, err)
	}
	if pid := supervisor(dir); pid != 0 {
		syscall.Kill(pid, syscall.SIGTERM)
		deadline := time.Now().Add(4 * time.Minute)
		for supervisor(dir) == pid || alive(pid) {
			if time.Now().After(deadline) {
				return fmt.Errorf("supervisor %d did not stop the engine within 4 min; see %s.log", pid, dir)
			}
			time.Sleep(100 * time.Millisecond)
		}
	} else {
		// The supervisor died without stopping the engine.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := e.Reap(ctx); err != nil {
			return err
		}
	}
	if err := e.Verify(); err != nil {
		return fmt.Errorf("%v; see %s.log", err, dir)
	}
	os.Remove(dir + ".log")
	fmt.Fprintf(os.Stderr, "engine: stopped; socket %s, processes and mounts gone\n", e.Socket)
	return nil
}

func alive(pid int) bool {
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(st), ')')
	return i > 0 && i+2 < len(st) && st[i+2] != 'Z'
}

// startTime returns a process's start time (field 22 of /proc/PID/stat).
func startTime(pid int) (uint64, error) {
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(st)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("malformed stat")
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return 0, errors.New("malformed stat")
	}
	return strconv.ParseUint(f[19], 10, 64)
}

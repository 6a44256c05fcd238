// Command iptables-wrapper picks the iptables backend (legacy or nft) that the
// host's network namespace already uses, points iptables, iptables-save,
// iptables-restore and their ip6tables twins at it, and runs the command it
// was called as. It does what kubernetes-sigs/iptables-wrappers does for the
// upstream kube-proxy image, for the kube-proxy and kindnet images of tmbox's
// kind node image (hack/kindimage): a hostNetwork pod must write its rules
// with the same backend as the node, or the two sets of rules never meet.
//
// Install it as /usr/sbin/iptables-wrapper with the six commands as
// symlinks to it, next to xtables-legacy-multi and xtables-nft-multi. The
// first call decides (the backend with more rules wins, legacy on a tie, as
// kind's node entrypoint decides) and replaces the symlinks, so later calls
// go straight to the real binary; when the symlinks cannot be replaced (a
// read-only root) every call decides again.
package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// sbin is where the wrapper, the six commands and the multi binaries live.
const sbin = "/usr/sbin"

// commands are the names the wrapper answers to.
var commands = []string{"iptables", "iptables-save", "iptables-restore", "ip6tables", "ip6tables-save", "ip6tables-restore"}

func main() {
	name := filepath.Base(os.Args[0])
	if name == "iptables-wrapper" {
		fmt.Fprintln(os.Stderr, "iptables-wrapper: call it as one of", commands)
		os.Exit(2)
	}
	mode := detect()
	target := filepath.Join(sbin, "xtables-"+mode+"-multi")
	for _, c := range commands {
		if err := relink(filepath.Join(sbin, c), "xtables-"+mode+"-multi"); err != nil {
			break // read-only: run the real binary directly below
		}
	}
	// The multi binaries dispatch on argv[0]'s base name.
	err := syscall.Exec(target, append([]string{name}, os.Args[1:]...), os.Environ())
	fmt.Fprintf(os.Stderr, "iptables-wrapper: exec %s: %v\n", target, err)
	os.Exit(1)
}

// detect returns "legacy" or "nft": whichever backend holds more rules in
// this network namespace (legacy when they tie, kind's rule).
func detect() string {
	legacy := rules("legacy", "iptables-save") + rules("legacy", "ip6tables-save")
	nft := rules("nft", "iptables-save") + rules("nft", "ip6tables-save")
	if legacy >= nft {
		return "legacy"
	}
	return "nft"
}

// rules counts the rules ("-A …" lines) that mode's save command prints;
// failures count as none.
func rules(mode, save string) int {
	cmd := exec.Command(filepath.Join(sbin, "xtables-"+mode+"-multi"))
	cmd.Args = []string{save}
	var out bytes.Buffer
	cmd.Stdout = &out
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		return 0
	}
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second): // nft can hang on a broken kernel
		_ = cmd.Process.Kill()
		<-done
		return 0
	}
	n := 0
	for _, line := range bytes.Split(out.Bytes(), []byte("\n")) {
		if bytes.HasPrefix(line, []byte("-")) {
			n++
		}
	}
	return n
}

// relink atomically makes path a symlink to target.
func relink(path, target string) error {
	tmp := fmt.Sprintf("%s.%d.tmp", path, os.Getpid())
	_ = os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return nil
}

// Command bench measures tmbox against what a user would script by hand,
// on real test clusters, and writes docs/performance.md. Run it through
// `make bench`, which builds bin/tmbox and the test cluster binaries and
// runs this inside a loopback-only network namespace.
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/template"
	"time"

	"github.com/tmbox/tmbox/internal/testcluster"
	"github.com/tmbox/tmbox/manifests"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type config struct {
	tmbox, kubectl, mirror, out, bundleBench, traceOut string
	runs, startupRuns                                  int
	scenarios                                          map[string]bool
	// rendered maps a release to the directory its `tmbox render` output
	// is in; objects to its decoded objects (for the floor).
	rendered map[string]string
	objects  map[string]floorObjects
}

// applianceCluster is a test cluster whose controller-manager runs with the
// client rate limit tmbox's kind clusters set (manifests'
// KindControllerManagerQPS): the upgrade target is judged on it.
func applianceCluster(bin string) testcluster.Options {
	return testcluster.Options{BinDir: bin, ControllerManagerQPS: manifests.KindControllerManagerQPS, ControllerManagerBurst: manifests.KindControllerManagerBurst}
}

// applianceQPS describes applianceCluster's controller-manager.
func applianceQPS() string {
	return fmt.Sprintf("--kube-api-qps=%d, burst %d", manifests.KindControllerManagerQPS, manifests.KindControllerManagerBurst)
}

// Scenarios (-scenarios) in the order a run measures them.
var allScenarios = []string{"baseline", "floor", "install", "upgrade", "startup", "trace"}

// Releases the install and floor scenarios measure; upgradeFrom is where
// the upgrade starts (to the last of installReleases, one hop at a time).
var (
	installReleases = []string{"1.22", "1.23"}
	upgradeFrom     = "1.21"
	upgradeHops     = []string{"1.22", "1.23"}
)

func run() error {
	c := config{rendered: map[string]string{}, objects: map[string]floorObjects{}, scenarios: map[string]bool{}}
	var scenarios string
	flag.StringVar(&c.tmbox, "tmbox", "bin/tmbox", "tmbox binary")
	flag.StringVar(&c.mirror, "mirror", "../shared/upstream", "upstream manifests")
	flag.StringVar(&c.out, "out", "docs/performance.md", "report to write (\"\": none)")
	flag.StringVar(&c.bundleBench, "bundle-bench", "", "output of go test -bench VerifyBundle ./bundle")
	flag.StringVar(&c.traceOut, "trace-out", "", "keep the traced install's TMBOX_TRACE file here (the upgrade's with -upgrade before the extension)")
	flag.IntVar(&c.runs, "runs", 3, "runs of each cluster scenario")
	flag.IntVar(&c.startupRuns, "startup-runs", 20, "runs of each startup measurement")
	flag.StringVar(&scenarios, "scenarios", strings.Join(allScenarios, ","), "scenarios to measure")
	flag.Parse()
	for _, s := range strings.Split(scenarios, ",") {
		if !slices.Contains(allScenarios, s) {
			return fmt.Errorf("unknown scenario %q (known: %s)", s, strings.Join(allScenarios, ", "))
		}
		c.scenarios[s] = true
	}
	bin := os.Getenv(testcluster.BinEnv)
	if bin == "" {
		return fmt.Errorf("%s is not set", testcluster.BinEnv)
	}
	c.kubectl = filepath.Join(bin, "kubectl")
	var err error
	if c.tmbox, err = filepath.Abs(c.tmbox); err != nil {
		return err
	}
	if c.mirror, err = filepath.Abs(c.mirror); err != nil {
		return err
	}
	ctx := context.Background()
	began := time.Now()
	r := &report{Date: time.Now().UTC().Format("2006-01-02 15:04 MST"), Runs: c.runs, StartupRuns: c.startupRuns, GoVersion: runtime.Version(), Machine: machine()}

	renderDir, err := os.MkdirTemp("", "tmbox-bench-render-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(renderDir)
	for _, rel := range []string{upgradeFrom, "1.22", "1.23"} {
		dir := filepath.Join(renderDir, rel)
		if _, err := c.cmd(ctx, nil, c.tmbox, "render", "--release", rel, "--mirror", c.mirror, "--output-dir", dir); err != nil {
			// An older tmbox spells it -o.
			if _, err2 := c.cmd(ctx, nil, c.tmbox, "render", "--release", rel, "--mirror", c.mirror, "-o", dir); err2 != nil {
				return fmt.Errorf("render %s: %w", rel, err)
			}
		}
		objs, err := readRendered(dir)
		if err != nil {
			return err
		}
		c.rendered[rel], c.objects[rel] = dir, objs
	}
	r.Objects = map[string]int{}
	for rel, o := range c.objects {
		r.Objects[rel] = o.count()
	}

	m := map[string][]float64{}
	add := func(key string, v float64) { m[key] = append(m[key], v) }
	for i := 1; i <= c.runs; i++ {
		if c.scenarios["baseline"] {
			log("run %d/%d: baseline 1.23 (kubectl apply --server-side + kubectl wait)", i, c.runs)
			d, err := withCluster(ctx, bin, func(cl *testcluster.Cluster) (time.Duration, error) { return c.baseline(ctx, cl, c.rendered["1.23"]) })
			if err != nil {
				return fmt.Errorf("baseline: %w", err)
			}
			add("baseline", d.Seconds())
		}
		// Each floor is measured right next to the tmbox run it is
		// compared with, in alternating order, and each pair gives a
		// ratio: the machine's load moves between pairs, less within one.
		floorFirst := i%2 == 1
		pair := func(name string, floor, tmbox func() error) error {
			steps := []func() error{floor, tmbox}
			if !floorFirst {
				steps = []func() error{tmbox, floor}
			}
			for _, step := range steps {
				if step == nil {
					continue
				}
				if err := step(); err != nil {
					return fmt.Errorf("%s: %w", name, err)
				}
			}
			return nil
		}
		var floorStep, tmboxStep func() error
		for _, rel := range installReleases {
			floorStep, tmboxStep = nil, nil
			if c.scenarios["floor"] {
				floorStep = func() error {
					log("run %d/%d: floor %s (16-way server-side apply, CRDs and namespaces first, no waits)", i, c.runs, rel)
					d, err := withCluster(ctx, bin, func(cl *testcluster.Cluster) (time.Duration, error) {
						// What a first install writes: no post-install
						// Jobs (installer.jobsDue).
						return floorApply(ctx, cl.Config, floorObjects{apply: c.objects[rel].apply})
					})
					add("floor-"+rel, d.Seconds())
					return err
				}
			}
			if c.scenarios["install"] {
				tmboxStep = func() error { return c.install(ctx, bin, i, rel, add) }
			}
			if err := pair(rel, floorStep, tmboxStep); err != nil {
				return err
			}
			if floorStep != nil && tmboxStep != nil {
				add("ratio-install-"+rel, m["install-"+rel][i-1]/m["floor-"+rel][i-1])
			}
		}
		floorStep, tmboxStep = nil, nil
		if c.scenarios["floor"] {
			floorStep = func() error {
				log("run %d/%d: floor of the upgrade hops %s → %s", i, c.runs, upgradeFrom, strings.Join(upgradeHops, " → "))
				d, err := withCluster(ctx, bin, func(cl *testcluster.Cluster) (time.Duration, error) {
					if _, err := floorApply(ctx, cl.Config, c.objects[upgradeFrom]); err != nil {
						return 0, err
					}
					var sum time.Duration
					for _, rel := range upgradeHops {
						d, err := floorApply(ctx, cl.Config, c.objects[rel])
						if err != nil {
							return 0, err
						}
						sum += d
					}
					return sum, nil
				})
				add("floor-upgrade", d.Seconds())
				return err
			}
		}
		if c.scenarios["upgrade"] {
			tmboxStep = func() error {
				// The same upgrade twice: on a cluster whose
				// controller-manager is configured as tmbox's kind
				// clusters are (the target), and on one as Kubernetes
				// ships it (an existing cluster tmbox cannot change).
				for _, u := range []struct {
					key, qps string
					opts     testcluster.Options
				}{
					{"upgrade", applianceQPS(), applianceCluster(bin)},
					{"upgrade-defaultcm", "Kubernetes' default, 20, burst 30", testcluster.Options{BinDir: bin}},
				} {
					log("run %d/%d: tmbox upgrade %s → %s (controller-manager %s)", i, c.runs, upgradeFrom, upgradeHops[len(upgradeHops)-1], u.qps)
					d, err := withClusterOpts(ctx, u.opts, func(cl *testcluster.Cluster) (time.Duration, error) {
						if _, err := c.cmd(ctx, nil, c.tmbox, "install", "--release", upgradeFrom, "--mirror", c.mirror, "--kubeconfig", cl.Kubeconfig, "--yes"); err != nil {
							return 0, err
						}
						res, err := c.cmd(ctx, nil, c.tmbox, "upgrade", "--to", upgradeHops[len(upgradeHops)-1], "--mirror", c.mirror, "--kubeconfig", cl.Kubeconfig, "--yes")
						return res.wall, err
					})
					if err != nil {
						return err
					}
					add(u.key, d.Seconds())
				}
				return nil
			}
		}
		if err := pair("upgrade", floorStep, tmboxStep); err != nil {
			return err
		}
		if floorStep != nil && tmboxStep != nil {
			add("ratio-upgrade", m["upgrade"][i-1]/m["floor-upgrade"][i-1])
			add("ratio-upgrade-defaultcm", m["upgrade-defaultcm"][i-1]/m["floor-upgrade"][i-1])
		}
	}
	if c.scenarios["startup"] {
		log("startup: tmbox --help, tmbox version, tmbox status without a cluster and a trivial Go binary, %d runs each", c.startupRuns)
		if err := c.startup(ctx, add); err != nil {
			return err
		}
		if err := r.startupProfile(ctx, c.tmbox); err != nil {
			return err
		}
	}
	if c.scenarios["trace"] {
		log("trace: one tmbox install 1.23 with TMBOX_TRACE")
		install, err := c.traced(ctx, testcluster.Options{BinDir: bin}, "", nil, "install", "--release", "1.23")
		if err != nil {
			return fmt.Errorf("traced install: %w", err)
		}
		r.Trace, r.TraceWall = install.regions, install.wall
		to := upgradeHops[len(upgradeHops)-1]
		log("trace: one tmbox upgrade %s → %s with TMBOX_TRACE", upgradeFrom, to)
		upgrade, err := c.traced(ctx, applianceCluster(bin), "-upgrade", []string{"install", "--release", upgradeFrom}, "upgrade", "--to", to)
		if err != nil {
			return fmt.Errorf("traced upgrade: %w", err)
		}
		r.UpgradeTrace, r.UpgradeTraceWall = upgrade.regions, upgrade.wall
	}

	rows := []struct{ key, name string }{
		{"install-1.22", "tmbox install, release 1.22 (s)"},
		{"floor-1.22", "floor: 16-way server-side apply of the same objects, release 1.22 (s)"},
		{"ratio-install-1.22", "install / floor, release 1.22, each run's pair (×)"},
		{"install-1.23", "tmbox install, release 1.23 (s)"},
		{"floor-1.23", "floor: 16-way server-side apply of the same objects, release 1.23 (s)"},
		{"ratio-install-1.23", "install / floor, release 1.23, each run's pair (×)"},
		{"baseline", "kubectl apply --server-side + kubectl wait, release 1.23 (s)"},
		{"noop", "no-op re-run of the install, release 1.23 (s)"},
		{"upgrade", "tmbox upgrade 1.21 → 1.22 → 1.23, controller-manager as on tmbox's kind clusters (" + applianceQPS() + ") (s)"},
		{"floor-upgrade", "floor: the two hops' objects applied over 1.21, summed (s)"},
		{"ratio-upgrade", "upgrade / floor of the hops, each run's pair (×)"},
		{"upgrade-defaultcm", "the same upgrade, controller-manager at Kubernetes' default (20, burst 30) (s)"},
		{"ratio-upgrade-defaultcm", "the same / floor of the hops, each run's pair (×)"},
		{"preflight", "preflight against the cluster, release 1.23 (s)"},
		{"help", "tmbox --help (ms)"},
		{"version", "tmbox version (ms)"},
		{"status", "tmbox status without a cluster (ms)"},
		{"trivial", "a trivial Go binary, built in the same run (ms)"},
		{"rss-1.22", "peak RSS of tmbox install 1.22 (MB)"},
		{"rss-1.23", "peak RSS of tmbox install 1.23 (MB)"},
	}
	for _, row := range rows {
		if xs := m[row.key]; len(xs) > 0 {
			r.add(row.key, row.name, xs)
		}
	}
	med := r.medians()
	has := func(keys ...string) bool {
		for _, k := range keys {
			if _, ok := med[k]; !ok {
				return false
			}
		}
		return true
	}
	for _, rel := range installReleases {
		if has("ratio-install-" + rel) {
			x := med["ratio-install-"+rel]
			r.target(fmt.Sprintf("install %s ≤ 1.5× the floor (median of the runs' pairs)", rel), fmt.Sprintf("%.2f× (medians: %.2f×)", x, med["install-"+rel]/med["floor-"+rel]), x <= 1.5)
		}
	}
	if has("install-1.23", "baseline") {
		x := med["install-1.23"] / med["baseline"]
		r.target("install 1.23 ≤ 0.5× the kubectl baseline", fmt.Sprintf("%.2f×", x), x <= 0.5)
	}
	if has("noop") {
		r.target("no-op re-run ≤ 1 s", fmt.Sprintf("%.2f s", med["noop"]), med["noop"] <= 1)
	}
	if has("ratio-upgrade") {
		x := med["ratio-upgrade"]
		r.target("upgrade 1.21 → 1.23 ≤ 1.5× the hops' floors, on a cluster as tmbox lays it down (median of the runs' pairs)", fmt.Sprintf("%.2f× (medians: %.2f×)", x, med["upgrade"]/med["floor-upgrade"]), x <= 1.5)
	}
	if has("ratio-upgrade-defaultcm") {
		x := med["ratio-upgrade-defaultcm"]
		r.Notes = append(r.Notes, fmt.Sprintf("Not a target: the same upgrade on a cluster whose controller-manager keeps Kubernetes' default rate limit (20 requests a second, burst 30), as an existing cluster tmbox did not create may, takes %.2f s, %.2f× the hops' floors (median of the runs' pairs); the difference is the rolling updates waiting on that limit, which tmbox cannot change on a cluster it did not create (see What bounds the rest).", med["upgrade-defaultcm"], x))
	}
	for _, k := range []string{"help", "version"} {
		if has(k) {
			r.target(fmt.Sprintf("tmbox %s ≤ 100 ms", map[string]string{"help": "--help", "version": "version"}[k]), fmt.Sprintf("%.0f ms", med[k]), med[k] <= 100)
		}
	}
	if has("status") {
		r.target("tmbox status without a cluster ≤ 100 ms", fmt.Sprintf("%.0f ms", med["status"]), med["status"] <= 100)
	}
	for _, rel := range installReleases {
		if has("rss-" + rel) {
			r.target(fmt.Sprintf("peak RSS during install %s ≤ 300 MB", rel), fmt.Sprintf("%.0f MB", med["rss-"+rel]), med["rss-"+rel] <= 300)
		}
	}
	if c.bundleBench != "" {
		verify, sum, err := bundleThroughput(c.bundleBench)
		if err != nil {
			return err
		}
		r.add("verify", "tmbox bundle verify of a 66 MB bundle file (MB/s)", verify)
		r.add("sha256sum", "sha256sum of the same file (MB/s)", sum)
		vm, sm := median(verify), median(sum)
		r.target("bundle verify ≥ 0.8× sha256sum's throughput", fmt.Sprintf("%.2f×", vm/sm), vm >= 0.8*sm)
	} else {
		r.Notes = append(r.Notes, "bundle verify: skipped (no -bundle-bench output given)")
	}
	r.Took = time.Since(began).Round(time.Second).String()
	for _, t := range r.Targets {
		log("%-48s %-10s %s", t.Name, t.Value, t.Verdict())
	}
	for _, row := range r.Rows {
		log("%-75s %8.2f [%.2f–%.2f]", row.Name, row.Median, row.Min, row.Max)
	}
	log("took %s", r.Took)
	if c.out == "" {
		return nil
	}
	f, err := os.Create(c.out)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := reportTemplate.Execute(f, r); err != nil {
		return err
	}
	log("wrote %s", c.out)
	return nil
}

func log(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// withCluster runs f against a fresh test cluster.
func withCluster(ctx context.Context, bin string, f func(*testcluster.Cluster) (time.Duration, error)) (time.Duration, error) {
	return withClusterOpts(ctx, testcluster.Options{BinDir: bin}, f)
}

// withClusterOpts runs f against a fresh test cluster started with opts.
func withClusterOpts(ctx context.Context, opts testcluster.Options, f func(*testcluster.Cluster) (time.Duration, error)) (time.Duration, error) {
	cl, err := testcluster.Start(ctx, opts)
	if err != nil {
		return 0, err
	}
	d, err := f(cl)
	return d, errors.Join(err, cl.Stop())
}

type result struct {
	wall     time.Duration
	maxRSSKB int64
	output   string
	// exited: the process ran and exited (with any status).
	exited bool
}

// cmd runs a process and measures its wall time and peak RSS.
func (c *config) cmd(ctx context.Context, env []string, name string, args ...string) (result, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	res := result{wall: time.Since(start), output: string(out), exited: cmd.ProcessState != nil}
	if cmd.ProcessState == nil {
		return res, fmt.Errorf("%s: %w", filepath.Base(name), err)
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		res.maxRSSKB = ru.Maxrss
	}
	if err != nil {
		return res, fmt.Errorf("%s %s: %w\n%s", filepath.Base(name), strings.Join(args, " "), err, lastLines(string(out), 20))
	}
	return res, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// baseline does what a careful user would do by hand with the same
// objects: per component, kubectl apply --server-side (again once the CRDs
// are established, when the first apply hit a kind not yet served), kubectl
// create for the generateName Jobs, then kubectl wait for CRDs Established
// and Deployments Available in the component's namespaces.
func (c *config) baseline(ctx context.Context, cl *testcluster.Cluster, dir string) (time.Duration, error) {
	files, err := filepath.Glob(filepath.Join(dir, "[0-9][0-9]-*.yaml"))
	if err != nil {
		return 0, err
	}
	slices.Sort(files)
	kc := []string{"--kubeconfig", cl.Kubeconfig}
	k := func(args ...string) error {
		_, err := c.cmd(ctx, nil, c.kubectl, append(kc, args...)...)
		return err
	}
	start := time.Now()
	for _, f := range files {
		if strings.HasSuffix(f, "-create.yaml") {
			continue
		}
		var err error
		for attempt := 0; attempt < 5; attempt++ {
			if err = k("apply", "--server-side", "--force-conflicts", "-f", f); err == nil {
				break
			}
			_ = k("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
		}
		if err != nil {
			return 0, err
		}
		if create := strings.TrimSuffix(f, ".yaml") + "-create.yaml"; fileExists(create) {
			if err := k("create", "-f", create); err != nil {
				return 0, err
			}
		}
		if err := k("wait", "--for=condition=Established", "crd", "--all", "--timeout=120s"); err != nil {
			return 0, err
		}
		for _, ns := range namespacesOf(f) {
			if err := k("wait", "--for=condition=Available", "deployment", "--all", "-n", ns, "--timeout=300s"); err != nil {
				return 0, err
			}
		}
	}
	return time.Since(start), nil
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

var nsLine = regexp.MustCompile(`(?m)^  namespace: (\S+)$`)

// namespacesOf lists the namespaces objects in a rendered file live in.
func namespacesOf(path string) []string {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	seen := map[string]bool{}
	var out []string
	for _, m := range nsLine.FindAllStringSubmatch(string(data), -1) {
		if !seen[m[1]] {
			seen[m[1]] = true
			out = append(out, m[1])
		}
	}
	return out
}

// bundleThroughput reads MB/s of the verify-file and sha256sum-file
// sub-benchmarks.
func bundleThroughput(path string) (verify, sum []float64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	re := regexp.MustCompile(`^BenchmarkVerifyBundle/(verify-file|sha256sum-file)\S*\s+\d+\s+\d+ ns/op\s+([\d.]+) MB/s`)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m := re.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		v, _ := strconv.ParseFloat(m[2], 64)
		if m[1] == "verify-file" {
			verify = append(verify, v)
		} else {
			sum = append(sum, v)
		}
	}
	if len(verify) == 0 || len(sum) == 0 {
		return nil, nil, fmt.Errorf("%s: no verify-file/sha256sum-file results", path)
	}
	return verify, sum, sc.Err()
}

func machine() string {
	cpu := "unknown CPU"
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		if m := regexp.MustCompile(`(?m)^model name\s*:\s*(.+)$`).FindStringSubmatch(string(data)); m != nil {
			cpu = m[1]
		}
	}
	mem := ""
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		if m := regexp.MustCompile(`MemTotal:\s+(\d+) kB`).FindStringSubmatch(string(data)); m != nil {
			kb, _ := strconv.ParseFloat(m[1], 64)
			mem = fmt.Sprintf(", %.1f GiB", kb/(1<<20))
		}
	}
	return fmt.Sprintf("%d CPUs (%s)%s, %s/%s", runtime.NumCPU(), cpu, mem, runtime.GOOS, runtime.GOARCH)
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

type row struct {
	Key, Name        string
	Median, Min, Max float64
	N                int
}

type targetRow struct {
	Name, Value string
	Met         bool
}

func (t targetRow) Verdict() string {
	if t.Met {
		return "met"
	}
	return "NOT met"
}

type report struct {
	Date, GoVersion, Machine string
	Runs, StartupRuns        int
	// Took is how long the whole bench ran.
	Took string
	// Objects counts each release's rendered objects.
	Objects map[string]int
	// Trace is the traced install's regions; TraceWall its wall time (s).
	Trace     []region
	TraceWall float64
	// UpgradeTrace and UpgradeTraceWall are the traced upgrade's.
	UpgradeTrace     []region
	UpgradeTraceWall float64
	Rows             []row
	Targets          []targetRow
	Notes            []string
	// InitTotal and InitTop profile package initialisation at startup
	// (GODEBUG=inittrace=1).
	InitTotal    float64
	InitPackages int
	InitTop      []initCost
}

type initCost struct {
	Package string
	Ms      float64
}

// startupProfile records what package initialisation costs tmbox --help.
func (r *report) startupProfile(ctx context.Context, tmbox string) error {
	cmd := exec.CommandContext(ctx, tmbox, "--help")
	cmd.Env = append(os.Environ(), "GODEBUG=inittrace=1")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("inittrace: %w", err)
	}
	re := regexp.MustCompile(`(?m)^init (\S+) @\S+ ms, ([\d.]+) ms clock`)
	for _, m := range re.FindAllStringSubmatch(stderr.String(), -1) {
		ms, _ := strconv.ParseFloat(m[2], 64)
		r.InitTotal += ms
		r.InitPackages++
		r.InitTop = append(r.InitTop, initCost{Package: m[1], Ms: ms})
	}
	slices.SortFunc(r.InitTop, func(a, b initCost) int {
		switch {
		case a.Ms > b.Ms:
			return -1
		case a.Ms < b.Ms:
			return 1
		}
		return 0
	})
	if len(r.InitTop) > 8 {
		r.InitTop = r.InitTop[:8]
	}
	return nil
}

func (r *report) add(key, name string, xs []float64) {
	r.Rows = append(r.Rows, row{Key: key, Name: name, Median: median(xs), Min: slices.Min(xs), Max: slices.Max(xs), N: len(xs)})
}

func (r *report) medians() map[string]float64 {
	m := map[string]float64{}
	for _, row := range r.Rows {
		m[row.Key] = row.Median
	}
	return m
}

func (r *report) target(name, value string, met bool) {
	r.Targets = append(r.Targets, targetRow{Name: name, Value: value, Met: met})
}

// reportTemplate renders docs/performance.md.
var reportTemplate = template.Must(template.New("report").Funcs(template.FuncMap{
	"applianceQPS": applianceQPS,
	"f": func(x float64) string {
		if x >= 100 {
			return fmt.Sprintf("%.0f", x)
		}
		return fmt.Sprintf("%.2f", x)
	},
	"s":      func(x float64) string { return fmt.Sprintf("%.2f", x) },
	"indent": func(depth int) string { return strings.Repeat("  ", depth) },
}).Parse(`# Performance

Generated by ` + "`make bench`" + ` on {{.Date}} (the whole bench took {{.Took}}) — do not edit by hand.

- Machine: {{.Machine}}; shared with other work while measured, so
  absolute times move from run to run: the ratios, each from the same run,
  are what the targets judge.
- Go: {{.GoVersion}}
- Cluster scenarios: {{.Runs}} runs each, every run on a fresh test cluster
  (etcd, kube-apiserver, controller-manager, scheduler built from Kubernetes
  1.34, kwok nodes, the webhook stand-in), inside a loopback-only network
  namespace; manifests from ` + "`../shared/upstream`" + `. Startup: {{.StartupRuns}} runs each.
- Each floor is measured right before or after (alternating by run) the
  tmbox run it is compared with, each pair on fresh clusters; the targets
  take the median of those per-run ratios (the ratio of the medians is shown
  beside it).
- Processes are timed whole (wall clock; peak RSS from the kernel's rusage);
  the floor is timed inside the bench (discovery and every request, not
  decoding the files); bundle throughput comes from
  ` + "`go test -bench VerifyBundle ./bundle`" + `.
- Objects per release (` + "`tmbox render`" + `):{{range $rel, $n := .Objects}} {{$rel}}: {{$n}};{{end}}

## Results

| scenario | median | min | max | runs |
|---|---|---|---|---|
{{range .Rows}}| {{.Name}} | {{f .Median}} | {{f .Min}} | {{f .Max}} | {{.N}} |
{{end}}
## Targets (ratios from the same run)

| target | measured | |
|---|---|---|
{{range .Targets}}| {{.Name}} | {{.Value}} | {{.Verdict}} |
{{end}}{{range .Notes}}
- {{.}}{{end}}
{{if .Trace}}
## Where an install's time goes

One more ` + "`tmbox install --release 1.23`" + ` on a fresh cluster, with
` + "`TMBOX_TRACE`" + ` ({{s .TraceWall}} s wall, traced). The installer marks its steps as
` + "`runtime/trace`" + ` regions; the bench reads them with ` + "`go tool trace -d=parsed`" + `.
Phases are the runner's; a component's ` + "`apply`" + `, ` + "`wait`" + ` and ` + "`needs of`" + `
regions run in the pipeline, side by side (regions under 10 ms left out).

| region | start (s) | duration (s) |
|---|---|---|
{{range .Trace}}| {{indent .Depth}}{{.Name}} | {{s .Start}} | {{s .Dur}} |
{{end}}{{end}}{{if .UpgradeTrace}}
## Where an upgrade's time goes

One more ` + "`tmbox upgrade --to 1.23`" + ` from 1.21 on a fresh cluster whose
controller-manager is configured as on tmbox's kind clusters, with
` + "`TMBOX_TRACE`" + ` ({{s .UpgradeTraceWall}} s wall, traced): two hops, each its
own operation (Istio alone first, then the other components through one
pipeline, then verify).

| region | start (s) | duration (s) |
|---|---|---|
{{range .UpgradeTrace}}| {{indent .Depth}}{{.Name}} | {{s .Start}} | {{s .Dur}} |
{{end}}{{end}}
## What bounds the rest

- **The API server's CPU.** Test cluster and tmbox share the machine's
  cores. The wave of every component's namespaces and CRDs (about 130
  objects, TriggerMesh's 80 CRDs among them) is most of an install and of
  the floor alike: writing the CRDs, then the API server establishing them
  (naming, OpenAPI, discovery). tmbox sends them as the floor does (16 at a
  time, all components together) and waits with one watch from a revision
  read before they were written — no list of every CRD's schema, which the
  earlier 100 ms polling made (half of tmbox's CPU and much of the API
  server's).
- **What the floor skips.** Rendering (fetch, verify, decode, the compiled-in
  Istio: about 0.3 s idle, 0.5–0.7 s busy), the preflight checks, the lock and
  the state, and readiness — every workload Available, every Job complete,
  every webhook Service with a ready endpoint — with the order correctness
  imposes (` + "`installer/graph.go`" + `): custom resources, webhook
  configurations and Jobs only once the CRDs are Established; Knative
  Eventing's webhook configurations only once every other component's
  workloads (and Serving's Jobs) are written, since its SinkBinding webhook
  intercepts Deployments and Jobs in every namespace. While the CRDs are
  being Established tmbox already writes what needs only its namespace —
  RBAC, ConfigMaps, Services and, on a first install, the workloads, whose
  pods start meanwhile — so after the wave come only the late objects and
  the last readiness checks, a few tenths of a second. A first install runs
  no post-install Jobs (nothing is stored to migrate): they cost about 1 s
  more, most of it the Job controller batching its pods' updates (one
  second per Job sync), which an upgrade hop still pays.
- **What is left between install and floor** is mostly the render (the
  compiled-in Istio above all), which must finish before the first write
  (every input is verified and rendered before anything is written), and
  the API server establishing the CRDs more slowly while tmbox writes the
  early objects beside it — overlapping them is still quicker than the
  floor's order (the early objects after the wave).
- **A no-op re-run** is rendering (about half of it) plus one
  metadata list per resource, one list per readiness check and the state's
  writes: it writes no object. The render's longest task is the
  compiled-in Istio (Istio's Helm charts, one goroutine: about 0.25 s on
  an idle core); it gets a core of its own while the other components'
  manifests are decoded on the rest, and bounds the render.
- **An upgrade** is bound by the rolling updates, which the floor does not
  wait for. Each hop moves Istio alone first (a hop failing in Istio rolls
  back Istio alone; about 1 s), then the rest as an install does — the
  wave of the CRDs that changed, the applies — and then waits while the
  cluster rolls some 20 Deployments to their new ReplicaSets. The
  controller-manager's controllers write every step of those (ReplicaSets,
  pods, status, events) through their client's rate limit; at Kubernetes'
  default of 20 requests a second (burst 30) the Deployments become
  Available one after another, about 0.1–0.3 s apart, and Eventing's wait
  is 4–5 s of a hop. The next hop may start only when the last one
  converged (its post-install migration Jobs complete, its controllers at
  the new version), so the waits add up hop after hop. The kind clusters
  tmbox creates therefore run the controller-manager with
  {{applianceQPS}} (OpenShift's values), and the
  upgrade target is judged on a test cluster configured the same way; the
  row at Kubernetes' default shows what the same upgrade costs on an
  existing cluster whose controller-manager tmbox does not configure.
  The floor, which waits for no rollout, re-sends every object of both
  releases; tmbox writes only the objects whose applied hash changed —
  TriggerMesh, whose version these hops keep, is not written at all (its
  objects keep the ` + "`tmbox.dev/release`" + ` label of the release that last
  wrote them).
{{if .InitTop}}
## Startup profile

` + "`GODEBUG=inittrace=1 tmbox --help`" + `: package initialisation takes
{{printf "%.0f" .InitTotal}} ms across {{.InitPackages}} packages before main runs. The most
expensive:

| package | ms |
|---|---|
{{range .InitTop}}| {{.Package}} | {{printf "%.1f" .Ms}} |
{{end}}
Every linked package's init runs at startup, whatever the command; most of
the time is the long tail of Istio's, Envoy's protobuf, Helm's and client-go's
packages, which the in-process Istio render and the Helm add-ons link.
go-runewidth v0.0.27 built its width tables in init (17–29 ms); v0.0.31
builds them lazily (0.04 ms). Measured on 2026-12-01, the same tree, 20 runs
each, load ~12: ` + "`tmbox version`" + ` 86 → 57 ms median, ` + "`tmbox --help`" + ` 89 → 53 ms.
The startup rows above are absolute (there is no in-run reference for a
CLI); a trivial Go binary built in the same run shows what any Go process
costs on the machine at that moment.
{{end}}
## What is compared

- **install**: ` + "`tmbox install --release R --mirror … --yes`" + ` on a fresh
  cluster: fetch and verify every manifest, render the compiled-in Istio, run
  the preflight checks, apply, wait for readiness, verify.
- **floor**: the API server's own time for the same objects: a bare client
  (client-go's dynamic client, no client-side rate limit) server-side
  applies every object of ` + "`tmbox render`" + `'s output, 16 at a time,
  namespaces and CRDs first, then — once the CRDs are Established (one
  watch) — everything else; no readiness waits, nothing read beforehand.
  The install's floor, like a first install, creates no post-install Jobs
  (Knative's storage-version migration and clean-up: there is nothing to
  migrate on a cluster the component was never on). The upgrade's floor
  applies 1.21's objects (not timed), then 1.22's and 1.23's, the
  generateName Jobs created as each hop does, and sums those two.
- **baseline**: what a careful user would script by hand with the same
  objects (` + "`tmbox render`" + ` output, rendering not timed): per component
  ` + "`kubectl apply --server-side`" + ` (re-applied once CRDs are established
  when the first apply hits a kind not yet served), ` + "`kubectl create`" + ` for
  the generateName Jobs, then ` + "`kubectl wait`" + ` for CRDs Established and
  Deployments Available in the component's namespaces.
- **no-op re-run**: the same install again; nothing changes.
- **upgrade**: 1.21 installed (not timed), then ` + "`tmbox upgrade --to 1.23`" + `.
- **status without a cluster**: ` + "`tmbox status`" + ` with a kubeconfig naming a
  loopback port nothing listens on.

## How to reproduce

    make test    # once: builds the test cluster's binaries
    make bench   # about 15 minutes on a busy machine; rewrites this file
    make bench BENCHFLAGS='-runs=1 -scenarios=floor,install,trace -out='   # quicker, writes nothing
`))

// install runs tmbox install of a release on a fresh cluster; for 1.23,
// then a no-op re-run and preflight.
func (c *config) install(ctx context.Context, bin string, i int, rel string, add func(string, float64)) error {
	log("run %d/%d: tmbox install %s, no-op re-run, preflight", i, c.runs, rel)
	_, err := withCluster(ctx, bin, func(cl *testcluster.Cluster) (time.Duration, error) {
		res, err := c.cmd(ctx, nil, c.tmbox, "install", "--release", rel, "--mirror", c.mirror, "--kubeconfig", cl.Kubeconfig, "--yes")
		if err != nil {
			return 0, err
		}
		add("install-"+rel, res.wall.Seconds())
		add("rss-"+rel, float64(res.maxRSSKB)/1024)
		if rel != "1.23" {
			return 0, nil
		}
		if res, err = c.cmd(ctx, nil, c.tmbox, "install", "--release", rel, "--mirror", c.mirror, "--kubeconfig", cl.Kubeconfig, "--yes"); err != nil {
			return 0, err
		}
		add("noop", res.wall.Seconds())
		if res, err = c.cmd(ctx, nil, c.tmbox, "preflight", "--release", rel, "--mirror", c.mirror, "--kubeconfig", cl.Kubeconfig); err != nil {
			return 0, err
		}
		add("preflight", res.wall.Seconds())
		return 0, nil
	})
	return err
}

// startup times tmbox --help, tmbox version, tmbox status against an
// address where nothing listens, and a trivial Go binary built here (the
// floor of any Go process on this machine, under the same load).
func (c *config) startup(ctx context.Context, add func(string, float64)) error {
	dir, err := os.MkdirTemp("", "tmbox-bench-startup-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module trivial\n\ngo 1.21\n"), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"trivial\") }\n"), 0o644); err != nil {
		return err
	}
	trivial := filepath.Join(dir, "trivial")
	build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", trivial, ".")
	build.Dir, build.Env = dir, append(os.Environ(), "GOTOOLCHAIN=local", "GOFLAGS=")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("build the trivial binary: %w\n%s", err, out)
	}
	// A kubeconfig naming a loopback port nothing listens on: status
	// without a cluster.
	kc := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kc, []byte(`apiVersion: v1
kind: Config
clusters: [{name: none, cluster: {server: "https://127.0.0.1:9"}}]
users: [{name: none, user: {token: none}}]
contexts: [{name: none, context: {cluster: none, user: none}}]
current-context: none
`), 0o600); err != nil {
		return err
	}
	runs := []struct {
		key     string
		mayFail bool
		name    string
		args    []string
	}{
		{"help", false, c.tmbox, []string{"--help"}},
		{"version", false, c.tmbox, []string{"version"}},
		{"status", true, c.tmbox, []string{"status", "--kubeconfig", kc}},
		{"trivial", false, trivial, nil},
	}
	for range c.startupRuns {
		for _, r := range runs {
			res, err := c.cmd(ctx, nil, r.name, r.args...)
			if err != nil && !(r.mayFail && res.exited) {
				return err
			}
			add(r.key, res.wall.Seconds()*1000)
		}
	}
	return nil
}

// tracedRun is one traced tmbox run: its regions of 10 ms or more and its
// wall time (s).
type tracedRun struct {
	regions []region
	wall    float64
}

// traced runs tmbox with args and TMBOX_TRACE on a fresh cluster, after
// setup (untraced) when it is given, and reads the installer's trace
// regions (phases, components' steps) from it. -trace-out keeps the trace
// (with suffix before its extension).
func (c *config) traced(ctx context.Context, opts testcluster.Options, suffix string, setup []string, args ...string) (tracedRun, error) {
	path := c.traceOut
	if path != "" {
		ext := filepath.Ext(path)
		path = strings.TrimSuffix(path, ext) + suffix + ext
	} else {
		f, err := os.CreateTemp("", "tmbox-bench-trace-")
		if err != nil {
			return tracedRun{}, err
		}
		f.Close()
		path = f.Name()
		defer os.Remove(path)
	}
	common := []string{"--mirror", c.mirror, "--yes"}
	var wall time.Duration
	_, err := withClusterOpts(ctx, opts, func(cl *testcluster.Cluster) (time.Duration, error) {
		kc := []string{"--kubeconfig", cl.Kubeconfig}
		if setup != nil {
			if _, err := c.cmd(ctx, nil, c.tmbox, slices.Concat(setup, common, kc)...); err != nil {
				return 0, err
			}
		}
		res, err := c.cmd(ctx, []string{"TMBOX_TRACE=" + path}, c.tmbox, slices.Concat(args, common, kc)...)
		wall = res.wall
		return 0, err
	})
	if err != nil {
		return tracedRun{}, err
	}
	out, err := exec.CommandContext(ctx, "go", "tool", "trace", "-d=parsed", path).Output()
	if err != nil {
		return tracedRun{}, fmt.Errorf("go tool trace -d=parsed %s: %w", path, err)
	}
	regions, err := parseRegions(out)
	if err != nil {
		return tracedRun{}, err
	}
	run := tracedRun{wall: wall.Seconds()}
	for _, rg := range regions {
		if rg.Dur >= 0.01 {
			run.regions = append(run.regions, rg)
		}
	}
	return run, nil
}

// region is one runtime/trace region of the traced install.
type region struct {
	Name       string
	Start, Dur float64 // seconds since the trace began
	Depth      int
}

var traceLine = regexp.MustCompile(`^M=\S+ P=\S+ G=(\d+) (RegionBegin|RegionEnd) Time=(\d+) Task=\d+ Type="(.*)"$`)
var traceTime = regexp.MustCompile(` Time=(\d+) `)

// parseRegions reads the regions out of `go tool trace -d=parsed` output,
// in the order they began.
func parseRegions(dump []byte) ([]region, error) {
	type open struct {
		name  string
		start int64
		idx   int
	}
	var t0 int64 = -1
	stacks := map[string][]open{}
	var out []region
	sc := bufio.NewScanner(bytes.NewReader(dump))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if t0 < 0 {
			if m := traceTime.FindStringSubmatch(line); m != nil {
				t0, _ = strconv.ParseInt(m[1], 10, 64)
			}
		}
		m := traceLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		g, kind, name := m[1], m[2], m[4]
		at, _ := strconv.ParseInt(m[3], 10, 64)
		if kind == "RegionBegin" {
			out = append(out, region{Name: name, Start: float64(at-t0) / 1e9, Depth: len(stacks[g])})
			stacks[g] = append(stacks[g], open{name, at, len(out) - 1})
			continue
		}
		st := stacks[g]
		for i := len(st) - 1; i >= 0; i-- {
			if st[i].name == name {
				out[st[i].idx].Dur = float64(at-st[i].start) / 1e9
				stacks[g] = append(st[:i], st[i+1:]...)
				break
			}
		}
	}
	if len(out) == 0 {
		return nil, errors.New("the trace holds no regions")
	}
	return out, sc.Err()
}

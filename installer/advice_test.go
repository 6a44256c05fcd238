package installer

import (
	"regexp"
	"testing"

	"github.com/tmbox/tmbox/catalog"
)

// TestMoveAdvice: for every installed release and every other target,
// the commands the advice names (install's refusal on a cluster at another
// release, upgrade's refusal of a downgrade) walk from installed to target,
// each accepted by the planner from the state the one before leaves
// (issue 17: advice never suggests a command that refuses).
func TestMoveAdvice(t *testing.T) {
	cat, err := catalog.Load("")
	if err != nil {
		t.Fatal(err)
	}
	command := regexp.MustCompile("`tmbox (upgrade --to ([0-9.]+)( --allow-downgrade)?|uninstall|install --release ([0-9.]+))`")
	names := cat.ReleaseNames()
	for i, installed := range names {
		for j, target := range names {
			if installed == target {
				continue
			}
			advice := map[string]string{"install": moveAdvice(cat, installed, target)}
			if j < i {
				advice["upgrade"] = downgradeAdvice(cat, installed, target)
			}
			for who, a := range advice {
				steps := command.FindAllStringSubmatch(a, -1)
				if len(steps) == 0 {
					t.Errorf("%s at %s → %s: advice %q names no command", who, installed, target, a)
					continue
				}
				at := installed
				for _, m := range steps {
					switch {
					case m[2] != "":
						if _, err := cat.Plan(at, m[2], nil, catalog.PlanOptions{AllowDowngrade: m[3] != ""}); err != nil {
							t.Errorf("%s at %s → %s: advice %q: %s refuses at %s: %v", who, installed, target, a, m[0], at, err)
						}
						at = m[2]
					case m[1] == "uninstall":
						at = ""
					default:
						if at != "" {
							t.Errorf("%s at %s → %s: advice %q: %s on a cluster at %s", who, installed, target, a, m[0], at)
						}
						at = m[4]
					}
				}
				if at != target {
					t.Errorf("%s at %s → %s: advice %q ends at %q", who, installed, target, a, at)
				}
			}
		}
	}
}

package installer

import (
	"regexp"
	"testing"

	"github.com/tmbox/tmbox/catalog"
)

// TestMoveAdvice: every command the advice names is one the planner
// accepts from the same state (issue 17: advice never suggests a command
// that refuses).
func TestMoveAdvice(t *testing.T) {
	cat, err := catalog.Load("")
	if err != nil {
		t.Fatal(err)
	}
	upgradeCmd := regexp.MustCompile("`tmbox upgrade --to ([0-9.]+)( --allow-downgrade)?`")
	for _, installed := range cat.ReleaseNames() {
		for _, target := range cat.ReleaseNames() {
			if installed == target {
				continue
			}
			advice := moveAdvice(cat, installed, target)
			m := upgradeCmd.FindStringSubmatch(advice)
			if m == nil {
				if _, err := cat.Plan(installed, target, nil, catalog.PlanOptions{AllowDowngrade: true}); err == nil {
					t.Errorf("%s → %s: advice %q names no upgrade, but one is possible", installed, target, advice)
				}
				continue
			}
			if m[1] != target {
				t.Errorf("%s → %s: advice %q names another release", installed, target, advice)
			}
			if _, err := cat.Plan(installed, m[1], nil, catalog.PlanOptions{AllowDowngrade: m[2] != ""}); err != nil {
				t.Errorf("%s → %s: advice %q, but that command refuses: %v", installed, target, advice, err)
			}
		}
	}
}

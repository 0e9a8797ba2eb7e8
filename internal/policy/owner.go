package policy

import (
	"regexp"

	"github.com/snapwarden/snapwarden/internal/facts"
)

// Rule is one ownership rule; exactly one of its fields is set.
type Rule struct {
	// TagCategory: the name of the VM's tag in this category is the customer id.
	TagCategory string
	// CustomAttribute: the value of this custom attribute is the customer id.
	CustomAttribute string
	// FolderRegex matches the VM's full inventory path; the group named
	// "customer" (else the first group) is the customer id.
	FolderRegex *regexp.Regexp
}

// Owner returns the customer id of the first rule that matches the VM and the
// index of that rule, or "" and -1 when no rule matches.
func Owner(vm *facts.VM, rules []Rule) (string, int) {
	for i, r := range rules {
		if id := r.match(vm); id != "" {
			return id, i
		}
	}
	return "", -1
}

func (r Rule) match(vm *facts.VM) string {
	switch {
	case r.TagCategory != "":
		for _, t := range vm.Tags {
			if t.Category == r.TagCategory {
				return t.Name
			}
		}
	case r.CustomAttribute != "":
		return vm.CustomAttributes[r.CustomAttribute]
	case r.FolderRegex != nil:
		m := r.FolderRegex.FindStringSubmatch(vm.Path)
		if m == nil {
			return ""
		}
		if i := r.FolderRegex.SubexpIndex("customer"); i > 0 {
			return m[i]
		}
		if len(m) > 1 {
			return m[1]
		}
	}
	return ""
}

package engine

import (
	"fmt"
	"strings"
)

// LossNames are the names ParseLoss accepts, in the order a flag's help
// lists them.
var LossNames = []string{"bce", "hinge", "ls"}

// ParseLoss returns the adversarial loss named name: "bce" is
// BCELoss{RealLabel: realLabel} (realLabel as given: 1, or less for
// one-sided label smoothing), "hinge" HingeLoss and "ls" LSLoss, which
// ignore realLabel.
func ParseLoss(name string, realLabel float32) (Loss, error) {
	switch name {
	case "bce":
		return BCELoss{RealLabel: realLabel}, nil
	case "hinge":
		return HingeLoss{}, nil
	case "ls":
		return LSLoss{}, nil
	}
	return nil, fmt.Errorf("engine: unknown loss %q (want one of %s)", name, strings.Join(LossNames, ", "))
}

# The lab: Debian 12 hosts with systemd as PID 1 (debootstrap + systemd-nspawn -b), one per
# Terraform role, on a private bridge, reached over SSH (tools/lab/lab.sh, README there).
# Included by the root Makefile. Needs root.
#
#   make lab-up   [LAB_NAME=lab] [LAB_SUBNET=10.78.5] [LAB_HOSTS="mysql tools"]
#   make lab-down [LAB_NAME=lab]
#   make lab-status | lab-base | lab-purge
#
# The base image, the debootstrap and apt caches and the ssh key live under .state/lab/ and
# are shared by every lab of this checkout: the first lab-up builds the base (~5 min), later
# ones boot six hosts in ~30 s. The inventory is .state/lab/$(LAB_NAME)/hosts.yml, with the
# committed inventories/lab/group_vars beside it (INVENTORY=lab in mk/infra.mk).
LAB_NAME   ?= lab
LAB_SH     := LAB_NAME=$(LAB_NAME) $(if $(LAB_SUBNET),LAB_SUBNET=$(LAB_SUBNET)) bash tools/lab/lab.sh
LAB_DIR    := $(STATE)/lab/$(LAB_NAME)

.PHONY: lab-base lab-up lab-down lab-status lab-purge

lab-base:
	@$(LAB_SH) base

lab-up:
	@$(LAB_SH) up $(LAB_HOSTS)

lab-down:
	@$(LAB_SH) down $(LAB_HOSTS)

lab-status:
	@$(LAB_SH) status

lab-purge:
	@$(LAB_SH) purge

#!/usr/bin/env bash
# Installs, idempotently, what vkgan needs on a Debian bookworm (or newer
# Debian/Ubuntu) machine: the Vulkan loader, Mesa's lavapipe (from
# bookworm-backports on bookworm: Mesa 25's lavapipe runs our kernels several
# times faster than bookworm's Mesa 22), the shader tools and the validation
# layer. On other systems it prints the packages to install and exits 1.
set -euo pipefail

pkgs=(mesa-vulkan-drivers libvulkan1 libvulkan-dev glslc spirv-tools
      vulkan-validationlayers vulkan-tools
      # the viewer: GLFW's cgo build (X11 headers; -lXxf86vm and -lGL at
      # link time), and Xvfb for its tests
      libxcursor-dev libxrandr-dev libxinerama-dev libxi-dev libxxf86vm-dev
      libgl1-mesa-dev libx11-dev xvfb xauth)

sudo=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null; then sudo="sudo"; else
    echo "deps: need root (or sudo) to install: ${pkgs[*]}" >&2; exit 1
  fi
fi

if ! command -v apt-get >/dev/null || [ ! -r /etc/os-release ]; then
  echo "deps: not a Debian/Ubuntu system; install the equivalents of:" >&2
  echo "  ${pkgs[*]}" >&2
  echo "  (Fedora: mesa-vulkan-drivers vulkan-loader vulkan-loader-devel glslc spirv-tools vulkan-validation-layers vulkan-tools;" >&2
  echo "   Arch: vulkan-swrast vulkan-icd-loader vulkan-headers shaderc spirv-tools vulkan-validation-layers vulkan-tools)" >&2
  exit 1
fi

. /etc/os-release
backports=""
if [ "${ID:-}" = debian ] && [ "${VERSION_CODENAME:-}" = bookworm ]; then
  backports=bookworm-backports
  src=/etc/apt/sources.list.d/vkgan-backports.sources
  if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
    echo "deps: adding the bookworm-backports apt source ($src)"
    $sudo tee "$src" >/dev/null <<SRC
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  fi
fi

# npm fetches the emoji data set (vkgan data emoji); Node.js from another
# source (nodesource, nvm) is as good as Debian's.
command -v npm >/dev/null || pkgs+=(npm)

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# On bookworm, a Mesa older than 25 means lavapipe came from the main suite.
mesa_old=false
if [ -n "$backports" ]; then
  v=$(dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null || true)
  case "$v" in 2[5-9].*|[3-9]*) ;; *) mesa_old=true ;; esac
fi

if [ ${#missing[@]} -eq 0 ] && [ "$mesa_old" = false ]; then
  echo "deps: all installed"; exit 0
fi

export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
if [ -n "$backports" ]; then
  $sudo apt-get install -y -qq --no-install-recommends -t "$backports" mesa-vulkan-drivers
fi
$sudo apt-get install -y -qq --no-install-recommends "${pkgs[@]}"
echo "deps: installed; lavapipe is $(dpkg-query -W -f='${Version}' mesa-vulkan-drivers)"

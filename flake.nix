{
  description = "galley: declarative, reproducible, audited sandboxes";

  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";
    flake-utils.url = "github:numtide/flake-utils";
  };

  outputs = { self, nixpkgs, flake-utils }:
    flake-utils.lib.eachDefaultSystem (system:
      let
        pkgs = nixpkgs.legacyPackages.${system};
        lib = pkgs.lib;
        # Keep only what the build reads: the schema and stdlib are embedded in the binary.
        src = lib.fileset.toSource {
          root = ./.;
          fileset = lib.fileset.unions [
            ./Cargo.toml
            ./Cargo.lock
            ./src
            ./lang
            ./stdlib
            ./tests
            ./examples
          ];
        };
        galley = pkgs.rustPlatform.buildRustPackage {
          pname = "galley";
          version = (lib.importTOML ./Cargo.toml).package.version;
          inherit src;
          cargoLock.lockFile = ./Cargo.lock;
          # Tests that need podman, buildah or a registry skip themselves when the tool is absent,
          # as it is inside the Nix build sandbox; CI runs them for real (scripts/test.sh).
          preCheck = ''
            export HOME=$TMPDIR
          '';
          meta = {
            description = "Declarative, reproducible, audited sandboxes";
            mainProgram = "galley";
            license = lib.licenses.asl20;
          };
        };
      in
      {
        packages.default = galley;
        checks.default = galley;
        devShells.default = pkgs.mkShell {
          inputsFrom = [ galley ];
          packages = with pkgs; [ cargo-nextest podman buildah runc skopeo umoci ];
        };
      });
}

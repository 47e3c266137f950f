fn main() {
    std::process::exit(sizeguard::run());
}

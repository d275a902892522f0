fn main() {
    println!("sanmover: being built");
}

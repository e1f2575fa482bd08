use super::*;

#[test]
fn output_names_are_final_components() {
    assert_eq!(output_name(b"a/b/c.txt"), Some(&b"c.txt"[..]));
    assert_eq!(output_name(b"../x"), Some(&b"x"[..]));
    assert_eq!(output_name(b"d/bad_\xff"), Some(&b"bad_\xff"[..]));
    for none in [&b""[..], b".", b"..", b"a/", b"a/.."] {
        assert_eq!(output_name(none), None, "{none:?}");
    }
}

#[test]
fn two_paths_to_one_output_name_are_refused_unless_relative() {
    let paths = ["d1/x", "a", "d2/x"];
    let mut d = FetchOptions::default();
    match d.check(&paths) {
        Err(Error::SameOutput { first, second, output, .. }) => {
            assert_eq!((first.as_str(), second.as_str(), output.as_str()), ("d1/x", "d2/x", "x"));
        }
        other => panic!("{other:?}"),
    }
    d.names = OutputNames::Relative;
    d.check(&paths).unwrap();
    assert_eq!(d.shown_name(b"./d1//x"), std::path::Path::new("d1/x"));
    // The same path, however it is spelt, is fetched once: no conflict.
    d.check(&["d1/x", "./d1/x", "d1//x"]).unwrap();
}

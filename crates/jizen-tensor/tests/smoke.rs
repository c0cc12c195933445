use jizen_tensor::{DType, Tensor};

#[test]
fn smoke() {
    let a = Tensor::from_vec(vec![1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]).unwrap().requires_grad_(true);
    let b = Tensor::from_vec(vec![1.0f64, 0.0, -1.0], &[3]).unwrap();
    let c = (&a * &b).unwrap();
    assert_eq!(c.to_vec::<f64>().unwrap(), vec![1.0, 0.0, -3.0, 4.0, 0.0, -6.0]);
    let m = a.matmul(&a.t().unwrap()).unwrap();
    assert_eq!(m.to_vec::<f64>().unwrap(), vec![14.0, 32.0, 32.0, 77.0]);
    let s = m.sum_all().unwrap();
    let g = s.backward().unwrap();
    // d/dA sum(A A^T) = 2 * (1 1^T) A  -> each column sum doubled
    assert_eq!(g.get(&a).unwrap().to_vec::<f64>().unwrap(), vec![10.0, 14.0, 18.0, 10.0, 14.0, 18.0]);
    assert_eq!(a.grad().unwrap().to_vec::<f64>().unwrap(), vec![10.0, 14.0, 18.0, 10.0, 14.0, 18.0]);
    let x = Tensor::ones(&[2, 1, 5, 5], DType::F32);
    let w = Tensor::ones(&[3, 1, 3, 3], DType::F32);
    let y = x.conv2d(&w, None, jizen_tensor::ConvOptions::default().padding(1)).unwrap();
    assert_eq!(y.shape(), &[2, 3, 5, 5]);
    assert_eq!(y.to_vec::<f32>().unwrap()[..5], [4.0, 6.0, 6.0, 6.0, 4.0]);
    println!("{}", m);
}

#[test]
fn reductions_of_empty_and_whole_tensors() {
    let z = Tensor::zeros(&[3, 0], DType::F32);
    assert_eq!(z.sum(&[0], false).unwrap().shape(), &[0]);
    assert_eq!(z.sum(&[1], false).unwrap().to_vec::<f32>().unwrap(), vec![0.0; 3]);
    assert!(z.max(&[1], false).is_err());
    // A whole-tensor sum of 2^20 values uses the blocked summation: exact for these integers.
    let n = 1 << 20;
    let x = Tensor::from_vec((0..n).map(|i| (i % 7) as f32).collect(), &[n]).unwrap();
    let expect: f64 = (0..n).map(|i| (i % 7) as f64).sum();
    assert_eq!(x.sum_all().unwrap().item().unwrap(), expect);
}

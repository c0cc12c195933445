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

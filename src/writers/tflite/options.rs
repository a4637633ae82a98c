//! Builtin options: the plain `Opts` of the plan turned into the schema's option tables.

use super::plan::Opts;
use crate::ir::DType;
use flatbuffers::{FlatBufferBuilder, UnionWIPOffset, WIPOffset};
use tract_tflite::tflite::{self as t, BuiltinOperator as B, BuiltinOptions as O};

fn pad(same: bool) -> t::Padding {
    if same {
        t::Padding::SAME
    } else {
        t::Padding::VALID
    }
}

/// The options table of an operator (NONE for ops whose options are empty or absent).
pub fn build(
    fbb: &mut FlatBufferBuilder,
    code: B,
    opts: &Opts,
) -> Result<(O, Option<WIPOffset<UnionWIPOffset>>), String> {
    let tt = |d: DType| super::serialize::tensor_type(d);
    let (kind, off) = match opts {
        Opts::None => return Ok((O::NONE, None)),
        Opts::Softmax => {
            let o = t::SoftmaxOptions::create(fbb, &t::SoftmaxOptionsArgs { beta: 1.0 });
            (O::SoftmaxOptions, o.as_union_value())
        }
        Opts::Conv {
            same,
            stride,
            dilation,
            act,
        } => {
            let o = t::Conv2DOptions::create(
                fbb,
                &t::Conv2DOptionsArgs {
                    padding: pad(*same),
                    stride_h: stride[0],
                    stride_w: stride[1],
                    dilation_h_factor: dilation[0],
                    dilation_w_factor: dilation[1],
                    fused_activation_function: *act,
                },
            );
            (O::Conv2DOptions, o.as_union_value())
        }
        Opts::Conv3d {
            same,
            stride,
            dilation,
            act,
        } => {
            let o = t::Conv3DOptions::create(
                fbb,
                &t::Conv3DOptionsArgs {
                    padding: pad(*same),
                    stride_d: stride[0],
                    stride_h: stride[1],
                    stride_w: stride[2],
                    dilation_d_factor: dilation[0],
                    dilation_h_factor: dilation[1],
                    dilation_w_factor: dilation[2],
                    fused_activation_function: *act,
                },
            );
            (O::Conv3DOptions, o.as_union_value())
        }
        Opts::Depthwise {
            same,
            stride,
            dilation,
            multiplier,
            act,
        } => {
            let o = t::DepthwiseConv2DOptions::create(
                fbb,
                &t::DepthwiseConv2DOptionsArgs {
                    padding: pad(*same),
                    stride_h: stride[0],
                    stride_w: stride[1],
                    depth_multiplier: *multiplier,
                    dilation_h_factor: dilation[0],
                    dilation_w_factor: dilation[1],
                    fused_activation_function: *act,
                },
            );
            (O::DepthwiseConv2DOptions, o.as_union_value())
        }
        Opts::TransposeConv { same, stride, act } => {
            let o = t::TransposeConvOptions::create(
                fbb,
                &t::TransposeConvOptionsArgs {
                    padding: pad(*same),
                    stride_h: stride[0],
                    stride_w: stride[1],
                    fused_activation_function: *act,
                },
            );
            (O::TransposeConvOptions, o.as_union_value())
        }
        Opts::Pool {
            same,
            stride,
            filter,
            act,
        } => {
            let o = t::Pool2DOptions::create(
                fbb,
                &t::Pool2DOptionsArgs {
                    padding: pad(*same),
                    stride_h: stride[0],
                    stride_w: stride[1],
                    filter_height: filter[0],
                    filter_width: filter[1],
                    fused_activation_function: *act,
                },
            );
            (O::Pool2DOptions, o.as_union_value())
        }
        Opts::FullyConnected {
            act,
            keep_num_dims,
            asymmetric,
        } => {
            let o = t::FullyConnectedOptions::create(
                fbb,
                &t::FullyConnectedOptionsArgs {
                    fused_activation_function: *act,
                    weights_format: t::FullyConnectedOptionsWeightsFormat::DEFAULT,
                    keep_num_dims: *keep_num_dims,
                    asymmetric_quantize_inputs: *asymmetric,
                },
            );
            (O::FullyConnectedOptions, o.as_union_value())
        }
        Opts::Arith(act) => {
            let act = *act;
            match code {
                B::ADD => {
                    let o = t::AddOptions::create(
                        fbb,
                        &t::AddOptionsArgs {
                            fused_activation_function: act,
                            pot_scale_int16: true,
                        },
                    );
                    (O::AddOptions, o.as_union_value())
                }
                B::SUB => {
                    let o = t::SubOptions::create(
                        fbb,
                        &t::SubOptionsArgs {
                            fused_activation_function: act,
                            pot_scale_int16: true,
                        },
                    );
                    (O::SubOptions, o.as_union_value())
                }
                B::MUL => {
                    let o = t::MulOptions::create(
                        fbb,
                        &t::MulOptionsArgs {
                            fused_activation_function: act,
                        },
                    );
                    (O::MulOptions, o.as_union_value())
                }
                _ => {
                    let o = t::DivOptions::create(
                        fbb,
                        &t::DivOptionsArgs {
                            fused_activation_function: act,
                        },
                    );
                    (O::DivOptions, o.as_union_value())
                }
            }
        }
        Opts::Concat { axis, act } => {
            let o = t::ConcatenationOptions::create(
                fbb,
                &t::ConcatenationOptionsArgs {
                    axis: *axis,
                    fused_activation_function: *act,
                },
            );
            (O::ConcatenationOptions, o.as_union_value())
        }
        Opts::Reshape(shape) => {
            let new_shape = shape.as_ref().map(|s| fbb.create_vector(s));
            let o = t::ReshapeOptions::create(fbb, &t::ReshapeOptionsArgs { new_shape });
            (O::ReshapeOptions, o.as_union_value())
        }
        Opts::Reducer { keep_dims } => {
            let o = t::ReducerOptions::create(
                fbb,
                &t::ReducerOptionsArgs {
                    keep_dims: *keep_dims,
                },
            );
            (O::ReducerOptions, o.as_union_value())
        }
        Opts::StridedSlice {
            begin_mask,
            end_mask,
        } => {
            let o = t::StridedSliceOptions::create(
                fbb,
                &t::StridedSliceOptionsArgs {
                    begin_mask: *begin_mask,
                    end_mask: *end_mask,
                    ellipsis_mask: 0,
                    new_axis_mask: 0,
                    shrink_axis_mask: 0,
                },
            );
            (O::StridedSliceOptions, o.as_union_value())
        }
        Opts::Gather { axis } => {
            let o = t::GatherOptions::create(
                fbb,
                &t::GatherOptionsArgs {
                    axis: *axis,
                    batch_dims: 0,
                },
            );
            (O::GatherOptions, o.as_union_value())
        }
        Opts::Split(n) => {
            let o = t::SplitOptions::create(fbb, &t::SplitOptionsArgs { num_splits: *n });
            (O::SplitOptions, o.as_union_value())
        }
        Opts::SplitV(n) => {
            let o = t::SplitVOptions::create(fbb, &t::SplitVOptionsArgs { num_splits: *n });
            (O::SplitVOptions, o.as_union_value())
        }
        Opts::Resize {
            align_corners,
            half_pixel,
        } if code == B::RESIZE_BILINEAR => {
            let o = t::ResizeBilinearOptions::create(
                fbb,
                &t::ResizeBilinearOptionsArgs {
                    align_corners: *align_corners,
                    half_pixel_centers: *half_pixel,
                },
            );
            (O::ResizeBilinearOptions, o.as_union_value())
        }
        Opts::Resize {
            align_corners,
            half_pixel,
        } => {
            let o = t::ResizeNearestNeighborOptions::create(
                fbb,
                &t::ResizeNearestNeighborOptionsArgs {
                    align_corners: *align_corners,
                    half_pixel_centers: *half_pixel,
                },
            );
            (O::ResizeNearestNeighborOptions, o.as_union_value())
        }
        Opts::LeakyRelu(alpha) => {
            let o = t::LeakyReluOptions::create(fbb, &t::LeakyReluOptionsArgs { alpha: *alpha });
            (O::LeakyReluOptions, o.as_union_value())
        }
        Opts::Gelu { approximate } => {
            let o = t::GeluOptions::create(
                fbb,
                &t::GeluOptionsArgs {
                    approximate: *approximate,
                },
            );
            (O::GeluOptions, o.as_union_value())
        }
        Opts::Cast { from, to } => {
            let o = t::CastOptions::create(
                fbb,
                &t::CastOptionsArgs {
                    in_data_type: tt(*from)?,
                    out_data_type: tt(*to)?,
                },
            );
            (O::CastOptions, o.as_union_value())
        }
        Opts::Arg(d) if code == B::ARG_MAX => {
            let o = t::ArgMaxOptions::create(
                fbb,
                &t::ArgMaxOptionsArgs {
                    output_type: tt(*d)?,
                },
            );
            (O::ArgMaxOptions, o.as_union_value())
        }
        Opts::Arg(d) => {
            let o = t::ArgMinOptions::create(
                fbb,
                &t::ArgMinOptionsArgs {
                    output_type: tt(*d)?,
                },
            );
            (O::ArgMinOptions, o.as_union_value())
        }
        Opts::BatchMatMul { adj_x, adj_y } => {
            let o = t::BatchMatMulOptions::create(
                fbb,
                &t::BatchMatMulOptionsArgs {
                    adj_x: *adj_x,
                    adj_y: *adj_y,
                    asymmetric_quantize_inputs: false,
                },
            );
            (O::BatchMatMulOptions, o.as_union_value())
        }
        Opts::MirrorPad { reflect } => {
            let mode = if *reflect {
                t::MirrorPadMode::REFLECT
            } else {
                t::MirrorPadMode::SYMMETRIC
            };
            let o = t::MirrorPadOptions::create(fbb, &t::MirrorPadOptionsArgs { mode });
            (O::MirrorPadOptions, o.as_union_value())
        }
        Opts::Block(b) if code == B::DEPTH_TO_SPACE => {
            let o =
                t::DepthToSpaceOptions::create(fbb, &t::DepthToSpaceOptionsArgs { block_size: *b });
            (O::DepthToSpaceOptions, o.as_union_value())
        }
        Opts::Block(b) => {
            let o =
                t::SpaceToDepthOptions::create(fbb, &t::SpaceToDepthOptionsArgs { block_size: *b });
            (O::SpaceToDepthOptions, o.as_union_value())
        }
        Opts::Cumsum { exclusive, reverse } => {
            let o = t::CumsumOptions::create(
                fbb,
                &t::CumsumOptionsArgs {
                    exclusive: *exclusive,
                    reverse: *reverse,
                },
            );
            (O::CumsumOptions, o.as_union_value())
        }
        Opts::While { cond, body } => {
            let o = t::WhileOptions::create(
                fbb,
                &t::WhileOptionsArgs {
                    cond_subgraph_index: *cond,
                    body_subgraph_index: *body,
                },
            );
            (O::WhileOptions, o.as_union_value())
        }
        Opts::If { then, other } => {
            let o = t::IfOptions::create(
                fbb,
                &t::IfOptionsArgs {
                    then_subgraph_index: *then,
                    else_subgraph_index: *other,
                },
            );
            (O::IfOptions, o.as_union_value())
        }
        Opts::Shape => {
            let o = t::ShapeOptions::create(
                fbb,
                &t::ShapeOptionsArgs {
                    out_type: t::TensorType::INT32,
                },
            );
            (O::ShapeOptions, o.as_union_value())
        }
        Opts::SequenceLstm {
            time_major,
            cell_clip,
        } => {
            let o = t::UnidirectionalSequenceLSTMOptions::create(
                fbb,
                &t::UnidirectionalSequenceLSTMOptionsArgs {
                    fused_activation_function: t::ActivationFunctionType::TANH,
                    cell_clip: *cell_clip,
                    proj_clip: 0.0,
                    time_major: *time_major,
                    asymmetric_quantize_inputs: false,
                    diagonal_recurrent_tensors: false,
                },
            );
            (O::UnidirectionalSequenceLSTMOptions, o.as_union_value())
        }
        Opts::Rnn => {
            let o = t::RNNOptions::create(
                fbb,
                &t::RNNOptionsArgs {
                    fused_activation_function: t::ActivationFunctionType::NONE,
                    asymmetric_quantize_inputs: false,
                },
            );
            (O::RNNOptions, o.as_union_value())
        }
        Opts::OneHot(axis) => {
            let o = t::OneHotOptions::create(fbb, &t::OneHotOptionsArgs { axis: *axis });
            (O::OneHotOptions, o.as_union_value())
        }
    };
    Ok((kind, Some(off)))
}

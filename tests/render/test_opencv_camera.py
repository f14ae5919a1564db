import torch

from emo_backend.render.camera import intrinsics_from_fov, look_at, orbit_viewmat, project_points


def test_look_at_is_opencv():
    viewmat = look_at(torch.tensor([0.0, 0.0, 2.0]), torch.zeros(3), torch.tensor([0.0, 1.0, 0.0]))
    K = intrinsics_from_fov(40.0, 200, 100)
    pts = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.1, 0.0], [0.1, 0.0, 0.0]])
    px, z = project_points(pts, viewmat, K)
    torch.testing.assert_close(z, torch.full((3,), 2.0))
    torch.testing.assert_close(px[0], torch.tensor([100.0, 50.0]))
    assert px[1, 1] < 50  # world up is image up (OpenCV +Y is down)
    assert px[2, 0] > 100  # camera on +Z looking at -Z: world +X is image right
    torch.testing.assert_close(viewmat[:3, :3] @ viewmat[:3, :3].T, torch.eye(3))


def test_orbit_yaw_moves_camera_to_subject_left():
    viewmat = orbit_viewmat(90.0, 0.0, 1.0)
    cam_pos = -viewmat[:3, :3].T @ viewmat[:3, 3]
    torch.testing.assert_close(cam_pos, torch.tensor([1.0, 0.0, 0.0]), atol=1e-6, rtol=0)

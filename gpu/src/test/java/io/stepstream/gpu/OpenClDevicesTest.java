package io.stepstream.gpu;

import com.aparapi.device.OpenCLDevice;
import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class OpenClDevicesTest {
    @Test
    void listsTheDevicesAndSelectsByIndexKindAndName() {
        OpenClTestSupport.device(); // fails with the install hint when there is no OpenCL at all
        List<OpenCLDevice> devices = OpenClDevices.list();
        assertFalse(devices.isEmpty());
        for (int i = 0; i < devices.size(); i++) {
            OpenCLDevice d = devices.get(i);
            assertSame(d, OpenClDevices.select(Integer.toString(i)));
            String kind = d.getType().name().toLowerCase();
            assertEquals(d.getType(), OpenClDevices.select(kind.equals("acc") ? "accelerator" : kind).getType());
            OpenCLDevice byName = OpenClDevices.select(d.getName().strip().toUpperCase());
            assertTrue(byName.getName().equalsIgnoreCase(d.getName()), byName.getName());
            assertTrue(OpenClDevices.describe(d).contains(d.getName().strip()));
        }
        assertTrue(devices.contains(OpenClDevices.select("auto")));
        assertTrue(devices.contains(OpenClDevices.select("")));
    }

    @Test
    void aSelectorMatchingNothingNamesTheDevicesThereAre() {
        List<OpenCLDevice> devices = OpenClDevices.list();
        OpenClException e = assertThrows(OpenClException.class, () -> OpenClDevices.select("no-such-device-xyz"));
        assertTrue(e.getMessage().contains("no-such-device-xyz"), e.getMessage());
        assertTrue(e.getMessage().contains(devices.getFirst().getName().strip()), e.getMessage());
        assertThrows(OpenClException.class, () -> OpenClDevices.select(Integer.toString(devices.size())));
        assertThrows(OpenClException.class, () -> OpenClDevices.select("99999999999999999999"));
    }
}

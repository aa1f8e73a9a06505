package io.stepstream.engine.dlm;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** LLaDA's transfer counts: mask count // steps per step, the remainder one each on the first steps. */
class LladaScheduleTest {
    @Test
    void evenSplit() {
        assertArrayEquals(new int[]{1, 1, 1, 1}, LladaGeneration.transferSchedule(4, 4));
        assertArrayEquals(new int[]{4, 4}, LladaGeneration.transferSchedule(8, 2));
        assertArrayEquals(new int[]{32}, LladaGeneration.transferSchedule(32, 1));
    }

    @Test
    void remainderGoesToTheFirstSteps() {
        assertArrayEquals(new int[]{3, 3, 2}, LladaGeneration.transferSchedule(8, 3));
        assertArrayEquals(new int[]{2, 1, 1, 1, 1}, LladaGeneration.transferSchedule(6, 5));
        assertArrayEquals(new int[]{1, 1, 0, 0}, LladaGeneration.transferSchedule(2, 4));
        assertArrayEquals(new int[]{0, 0, 0}, LladaGeneration.transferSchedule(0, 3));
    }

    @Test
    void countsAlwaysSumToTheMasksAndNeverDifferByMoreThanOne() {
        for (int masks = 0; masks <= 70; masks++) {
            for (int steps = 1; steps <= 40; steps++) {
                int[] s = LladaGeneration.transferSchedule(masks, steps);
                assertEquals(steps, s.length);
                int sum = 0;
                for (int i = 0; i < steps; i++) {
                    sum += s[i];
                    assertTrue(i == 0 || s[i] <= s[i - 1], "non-increasing");
                    assertTrue(s[0] - s[i] <= 1);
                }
                assertEquals(masks, sum);
                assertArrayEquals(ReferenceLlada.numTransferTokens(masks, steps), s);
            }
        }
    }

    @Test
    void rejectsNonsense() {
        assertThrows(IllegalArgumentException.class, () -> LladaGeneration.transferSchedule(-1, 3));
        assertThrows(IllegalArgumentException.class, () -> LladaGeneration.transferSchedule(3, 0));
    }
}
